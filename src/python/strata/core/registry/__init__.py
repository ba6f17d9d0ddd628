"""The OCI distribution API: transport, auth, client, push policy; the pull and push subcommands."""
