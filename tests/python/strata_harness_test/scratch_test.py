from strata_harness import ScratchRepo, ran_processes


def test_scratch_repo_loads_the_plugin(scratch_repo):
    scratch_repo.write({"BUILD": 'files(name="f", sources=["hello.txt"])\n', "hello.txt": "hi\n"})
    # Pants refuses to run at all when a backend in backend_packages fails to load.
    assert "strata" in scratch_repo.config["GLOBAL"]["backend_packages"]
    result = scratch_repo.run("list", "::")
    assert result.stdout.split() == ["//:f", "//hello.txt:f"]
    plugin = scratch_repo.root / "pants-plugins/strata"
    assert (plugin / "register.py").is_file() and (plugin / "core/__main__.py").is_file()
    assert not list(plugin.rglob("*_test.py"))


def test_ran_processes_counts_executions_not_cache_hits(tmp_path):
    repo = ScratchRepo(tmp_path / "repo", backends=["pants.backend.shell"], isolated_cache=True)
    repo.write(
        {
            "BUILD": """
                shell_command(
                    name="probe",
                    command="echo hi > out.txt",
                    tools=["echo"],
                    output_files=["out.txt"],
                )
            """,
        }
    )
    first = repo.run("export-codegen", "::")
    assert ran_processes(first, "Running the `shell_command`") == [
        "Running the `shell_command` at `//:probe`"
    ]
    assert (repo.root / "dist/codegen/out.txt").read_text() == "hi\n"
    second = repo.run("export-codegen", "::")
    assert ran_processes(second, "Running the `shell_command`") == []
