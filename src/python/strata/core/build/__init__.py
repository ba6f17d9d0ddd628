"""What a `layer` Process imports, and nothing else: the shell ships this package (with the core's
entry modules) to layer sandboxes, so a change elsewhere in the core leaves cached layers valid."""
