"""``sharpscope trace --rel-stderr``: the trace to a stated standard error from the CLI."""

from __future__ import annotations

import json

from .test_esd_trace_and_mode_note import PLAIN, _ckpt


def test_cli_trace_to_a_stated_standard_error(cli_runner, cli_app, tmp_path, monkeypatch):
    sd = _ckpt(tmp_path, monkeypatch, bn=False)
    out_json = tmp_path / "t.json"
    r = cli_runner.invoke(cli_app, ["trace", str(sd), *PLAIN, "--rel-stderr", "0.05",
                                    "--json", str(out_json)])  # fmt: skip
    assert r.exit_code == 0, r.output
    out = json.loads(out_json.read_text())
    assert out["target_rel_stderr"] == 0.05 and out["reached"] is True
    assert out["method"] in ("xtrace", "exact")  # xtrace is the default with a target
    assert out["stderr"] <= 0.05 * abs(out["trace"])
    assert "target 5% reached" in r.stdout
    for bad, why in ((["--rel-stderr", "2"], "fraction in (0, 1)"),
                     (["--rel-stderr", "0.05", "--method", "hutchpp"], "xtrace or hutchinson"),
                     (["--rel-stderr", "0.05", "--probes", "10"], "at least 16")):  # fmt: skip
        r = cli_runner.invoke(cli_app, ["trace", str(sd), *PLAIN, *bad])
        assert r.exit_code != 0
        lines = [x for x in r.output.splitlines() if x.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:") and why in lines[0], r.output


def test_compare_pyhessian_runs_it_to_the_same_standard_error(
    cli_runner, cli_app, tmp_path, monkeypatch
):
    sd = _ckpt(tmp_path, monkeypatch, bn=False)
    out_json = tmp_path / "t.json"
    r = cli_runner.invoke(cli_app, ["trace", str(sd), *PLAIN, "--rel-stderr", "0.1",
                                    "--method", "hutchinson", "--compare-pyhessian",
                                    "--json", str(out_json)])  # fmt: skip
    assert r.exit_code == 0, r.output
    ph = json.loads(out_json.read_text())["pyhessian"]
    assert ph["reached"] is True and ph["stderr"] <= 0.1 * abs(ph["trace"])
    assert ph["probes"] >= 10 and "same standard error" in ph["note"]


def test_progress_shows_the_error_reached_and_quiet_silences_it(
    cli_runner, cli_app, tmp_path, monkeypatch
):
    sd = _ckpt(tmp_path, monkeypatch, bn=False)
    base = ["trace", str(sd), *PLAIN, "--rel-stderr", "0.05", "--no-check-determinism"]
    r = cli_runner.invoke(cli_app, base)
    assert r.exit_code == 0, r.output
    assert "trace to 5%" in r.stderr and "stderr=" in r.stderr
    r = cli_runner.invoke(cli_app, [*base, "--quiet"])
    assert r.exit_code == 0 and "trace to" not in r.stderr and r.stdout == ""
