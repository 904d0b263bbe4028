"""Shared fixtures: the real-SDK samples in data/ and helpers to derive situations from them; the
test tiers (markers ``sdk``, ``browser``, ``notebooks``, ``slow``, registered in pyproject.toml)."""

from __future__ import annotations

import json
import os
import pathlib
import sys
import warnings

# jsonschema (imported by nbformat and the SDK client) loads its optional IRI format checker,
# rfc3987_syntax, which Jupyter's extras install and which compiles its grammars at import: 3-9 s of CPU in
# every test process. No test validates an IRI format, so the tests go without it.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]

import pytest  # noqa: E402

import mcptrace

ROOT = pathlib.Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data" / "samples"
BARE = ROOT / "data" / "bare"
ARTIFACTS = ROOT / "test-artifacts"


def read_lines(path: pathlib.Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def read_json_lines(path: pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in read_lines(path) if line.strip()]


def write_lines(path: pathlib.Path, lines: list[str]) -> pathlib.Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def samples_ws():
    ws = mcptrace.load(SAMPLES)
    yield ws
    ws.close()


@pytest.fixture(scope="session")
def incidents_ws():
    """Every incident capture loaded into one workspace, for tests that only read it."""
    ws = mcptrace.load(sorted((ROOT / "data" / "incidents").glob("*.jsonl")))
    yield ws
    ws.close()


@pytest.fixture(scope="session")
def artifacts() -> pathlib.Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def stdio_lines() -> list[str]:
    return read_lines(SAMPLES / "agent_stdio.jsonl")


def cli_here(capsys, *args):
    """The command line's ``main`` (``mcptrace.__main__.main``, what ``python -m mcptrace`` runs) in this
    process, without starting an interpreter: a CompletedProcess of its exit code (argparse's usage exit
    included) and output."""
    import subprocess

    from mcptrace.__main__ import main

    capsys.readouterr()
    try:
        rc = main([str(a) for a in args])
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else 1
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["mcptrace", *map(str, args)], rc, out, err)


def first_index(lines: list[str], pred) -> int:
    for i, line in enumerate(lines):
        if pred(json.loads(line)):
            return i
    raise AssertionError("no line matches")


os.environ.setdefault("PYTHONHASHSEED", "0")


# -- test tiers ------------------------------------------------------------------------------------
# `make test` runs every test; `make test-fast` deselects these markers:
#   sdk        starts real MCP SDK client/server processes, or regenerates data/samples, data/incidents
#   browser    drives a headless Chromium (kaleido PNG/SVG export, chromedriver, --dump-dom)
#   notebooks  runs the notebooks or a JupyterLab
#   slow       anything else above ~3 s (big loads, the benchmark scripts), and every hypothesis test
#   beside     starts real SDK processes or notebook kernels but may run beside other tests: `make test`
#              runs it (unless it also drives a browser) with the in-process tests on two workers
#   alone      regenerates data/samples or data/incidents, whose captures hold timings: `make test` runs
#              it last, with nothing beside it (the other sdk, browser and notebook tests run before it on
#              two workers, each module's on one)

#: test module -> the markers of every test in it
MODULE_MARKS: dict[str, tuple[str, ...]] = {
    "test_samples_generator": ("sdk", "alone"),
    "test_diff": ("sdk", "beside"),
    "test_notebooks": ("notebooks", "beside"),
    "test_browser_explorer": ("browser", "notebooks"),
    "test_property_mutations": ("slow",),
    "test_benchmarks": ("slow",),
    "test_tool_stats": ("sdk", "beside"),
}

#: "module::test function" (every parametrisation) -> its markers
TEST_MARKS: dict[str, tuple[str, ...]] = {
    "test_incidents_generator::test_regenerated_incidents_match_the_committed_ones": ("sdk", "alone"),
    "test_incidents_generator::test_a_situation_failing_its_checks_runs_again_alone": ("sdk", "alone"),
    "test_capture::test_stdio_tee_records_every_message_in_order": ("sdk",),
    "test_capture::test_follow_a_live_stdio_capture": ("sdk",),
    "test_capture::test_http_proxy_records_every_message_in_order": ("sdk",),
    "test_capture::test_http_proxy_legacy_sse_transport": ("sdk",),
    "test_capture::test_http_proxy_survives_disconnects_and_upstream_death": ("sdk",),
    "test_capture::test_http_proxy_records_resumption_get_and_delete": ("sdk",),
    "test_drift::test_before_then_after_gives_one_gap_per_changed_tool": ("sdk", "beside"),
    "test_drift::test_a_changed_prompt_is_one_prompt_gap": ("sdk", "beside"),
    "test_drift::test_the_same_variant_twice_is_no_drift": ("sdk", "beside"),
    "test_drift::test_an_append_gives_the_tables_of_one_load": ("sdk", "beside"),
    "test_drift::test_an_append_without_listings_keeps_the_drift_gaps": ("sdk", "beside"),
    "test_serve::test_tools_answer_like_the_workspace": ("sdk", "beside"),
    "test_serve::test_hostile_sql_is_refused_and_the_server_keeps_answering": ("sdk", "beside"),
    "test_serve::test_report_and_timeline_resources": ("sdk", "browser"),
    "test_serve::test_streamable_http_on_loopback": ("sdk", "beside"),
    "test_serve::test_diff_opens_only_databases_in_the_allowed_directories": ("sdk", "beside"),
    "test_timeline::test_exports_html_png_svg": ("browser",),
    "test_report::test_report_sections": ("browser",),
    "test_report::test_hostile_strings_stay_text_in_report_and_timeline": ("browser",),
    "test_tool_stats::test_report_tool_section_renders_inert_in_chromium": ("browser",),
    "test_correlation::test_precision_and_recall_of_every_gap_code_are_one": ("slow",),
    "test_incremental::test_following_an_http_capture_reaches_only_the_neighbourhood_of_its_edge": ("slow",),
    "test_follow::test_a_long_line_is_followed_in_pieces_and_rejected_as_a_load_rejects_it": ("slow",),
    "test_cli::test_load_sessions_gaps_timeline": ("slow",),
    "test_readers_http_logs::test_damaged_files_load_without_raising": ("slow",),
    "test_dataset::test_dataset_in_an_s3_object_store": ("slow",),
    "test_hostile_input::test_fifty_megabyte_line_loads_in_bounded_memory": ("slow",),
    "test_analysis::test_a_chain_of_candidates_is_assigned_in_one_pass": ("slow",),
    "test_analysis::test_one_to_one_is_the_nearest_first_assignment": ("slow",),
    "test_load_robustness::test_cli_open_never_writes_a_database": ("slow",),
    "test_lanes::test_generated_intervals_never_overlap_in_a_lane_and_use_the_fewest_lanes": ("slow",),
    "test_loader::test_a_batch_of_many_short_lines_keeps_every_message": ("slow",),
    "test_loader::test_appending_files_recomputes_like_loading_at_once": ("slow",),
    "test_cli::test_turns_and_tree_drill_down": ("slow",),
    "test_cli::test_unknown_session_is_a_clear_error": ("slow",),
    "test_cli::test_exit_2_on_usage_errors": ("slow",),
    "test_views::test_tree_cli_writes_figure_and_table": ("slow",),
    "test_dataset::test_export_parquet_cli": ("slow",),
    "test_readers_otlp::test_cli_load_exit_codes": ("slow",),
    "test_readers_http_logs::test_capture_proxy_writes_a_har_that_loads_like_its_envelopes": ("slow",),
    "test_readers_http_logs::test_har_and_capture_redact_the_same_query": ("slow",),
    "test_waterfall::test_hostile_strings_stay_text_in_the_per_turn_waterfall": ("slow",),
}

#: "module::test function[parameter id]" -> its markers (one parametrisation)
PARAM_MARKS: dict[str, tuple[str, ...]] = {
    "test_waterfall::test_drill_down_gives_exactly_the_rows_of_that_turn[incidents]": ("slow",),
    "test_lanes::test_call_lanes_of_every_real_session[incidents]": ("slow",),
    "test_waterfall::test_drill_down_gives_exactly_the_rows_of_that_turn[samples]": ("slow",),
}


def _check_tier_names() -> None:
    """Every module and test named above exists: a renamed test must not silently drop out of its
    tier (a warning in the summary, so that a rename elsewhere never stops the suite)."""
    here = pathlib.Path(__file__).resolve().parent
    missing = [m for m in MODULE_MARKS if not (here / f"{m}.py").is_file()]
    for key in [*TEST_MARKS, *(k.split("[", 1)[0] for k in PARAM_MARKS)]:
        mod, func = key.split("::")
        path = here / f"{mod}.py"
        if not path.is_file() or f"def {func}(" not in path.read_text(encoding="utf-8"):
            missing.append(key)
    if missing:
        warnings.warn(pytest.PytestConfigWarning(
            f"tests/conftest.py assigns test tiers to tests that do not exist: {', '.join(missing)}"))


def pytest_collection_modifyitems(config, items):
    _check_tier_names()
    for item in items:
        mod = item.path.stem
        func = getattr(item, "originalname", None) or item.name
        marks = (*MODULE_MARKS.get(mod, ()), *TEST_MARKS.get(f"{mod}::{func}", ()),
                 *PARAM_MARKS.get(f"{mod}::{item.name}", ()))
        if getattr(getattr(item, "obj", None), "is_hypothesis_test", False):
            marks = (*marks, "slow")
        for name in dict.fromkeys(marks):
            item.add_marker(getattr(pytest.mark, name))
        if {"beside", "sdk", "browser", "notebooks"} & set(marks) or _uses_a_module_fixture(item):
            # one worker runs a module's real-process, browser and notebook tests, and those using one of its
            # module fixtures (a capture, a load of every incident): the fixture is not made on both
            item.add_marker(pytest.mark.xdist_group(mod))


def _uses_a_module_fixture(item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    return info is not None and any(defs and defs[-1].scope == "module" for defs in info.name2fixturedefs.values())
