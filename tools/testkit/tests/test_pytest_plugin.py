"""The unit tier's two rules, run on small test files in an inline pytest session (no process):
a test that starts a process or listens is failed unless marked integration, and a module marked
integration is not even imported by a run that cannot select it."""

from __future__ import annotations

import pytest

PLUGIN = ("-p", "ragfleet.testkit.pytest_plugin", "-p", "no:cacheprovider", "--continue-on-collection-errors")


@pytest.fixture(autouse=True)
def _no_installed_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """The inner sessions load only the plugin under test: loading every installed one
    (hypothesis, schemathesis, locust...) for each of them cost seconds."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")


def test_a_unit_test_that_starts_a_process_or_listens_fails_and_says_why(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_starts="""
        import asyncio, multiprocessing, os, socket, subprocess
        import pytest

        def test_popen():
            subprocess.run(["true"])

        def test_system():
            os.system("true")

        def test_fork():
            os.fork()

        def test_multiprocessing_spawn():
            process = multiprocessing.get_context("spawn").Process(target=print)
            process.start()
            process.join()

        def test_asyncio_subprocess():
            async def main():
                await asyncio.create_subprocess_exec("true")
            asyncio.run(main())

        def test_listen():
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                sock.listen()

        def test_in_memory():
            assert sum(range(4)) == 6

        @pytest.mark.integration
        def test_marked():
            assert subprocess.run(["true"]).returncode == 0
        """
    )

    result = pytester.runpytest(*PLUGIN, "-m", "not integration")

    result.assert_outcomes(failed=6, passed=1, deselected=1)
    assert result.stdout.str().count("mark it integration") >= 6


def test_a_module_marked_integration_is_not_imported_by_a_run_that_cannot_select_it(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_heavy="""
        import pytest
        import a_module_that_does_not_exist  # stands for schemathesis, playwright...

        pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("tmp_path")]

        @pytest.mark.e2e
        def test_stack():
            pass
        """,
        test_light="""
        def test_light():
            pass
        """,
    )

    pytester.runpytest(*PLUGIN, "-m", "not integration").assert_outcomes(passed=1)
    # Runs that could select one of its tests import it (and so see the broken import).
    for selecting, light_selected in (("integration", 0), ("not integration or e2e", 1), ("e2e", 0)):
        pytester.runpytest(*PLUGIN, "-m", selecting).assert_outcomes(passed=light_selected, errors=1)
    pytester.runpytest(*PLUGIN).assert_outcomes(passed=1, errors=1)


@pytest.mark.integration  # its inner session starts a (sleeping) child process
def test_a_unit_test_after_a_session_server_was_started_is_not_blamed_for_it(
    pytester: pytest.Pytester,
) -> None:
    """In a whole-suite run an integration test's session fixture (Redis) is a live child when the
    unit tests run; CI failed every unit test after it until only new children counted."""
    pytester.makepyfile(
        """
        import subprocess, sys
        import pytest

        @pytest.fixture(scope="session")
        def server():
            process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
            yield process
            process.kill()
            process.wait()

        @pytest.mark.integration
        def test_starts_the_server(server):
            assert server.poll() is None

        def test_unit_after_it():
            assert True
        """
    )
    pytester.runpytest(*PLUGIN).assert_outcomes(passed=2)
