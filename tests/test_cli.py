"""The iadbench CLI runs the library's steps and reports bad input as one clear line."""

from iadbench.cli import main


def test_cli_demo_then_manifest(tmp_path, capsys):
    assert main(["demo", str(tmp_path / "d"), "--categories", "brick"]) == 0
    out = tmp_path / "m.parquet"
    assert main(["manifest", str(tmp_path / "d"), str(out), "--categories", "brick"]) == 0
    assert out.exists()
    assert "scratch" in capsys.readouterr().out


def test_cli_reports_errors_with_exit_code_2(tmp_path, capsys):
    code = main(
        ["manifest", str(tmp_path / "none"), str(tmp_path / "m.parquet"), "--categories", "x"]
    )
    assert code == 2
    assert "dataset root does not exist" in capsys.readouterr().err


def test_cli_manifest_discovers_all_categories_by_default(tmp_path, capsys):
    assert main(["demo", str(tmp_path / "d"), "--categories", "brick", "gravel"]) == 0
    out = tmp_path / "m.parquet"
    assert main(["manifest", str(tmp_path / "d"), str(out)]) == 0
    printed = capsys.readouterr().out
    assert "brick" in printed and "gravel" in printed


def test_cli_kinds_lists_needs_and_the_dataclass_defaults(capsys):
    assert main(["kinds"]) == 0
    out = capsys.readouterr().out
    assert "iadbench.methods.patchcore.method:PatchCore" in out and "training=per_category" in out
    assert '"coreset": 0.1' in out and '"n_features": null' in out
