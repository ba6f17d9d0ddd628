"""The store-node graph, without Pants: projecting a build graph onto nodes, splitting nodes,
checking that they agree on paths, and grouping them into layers."""
