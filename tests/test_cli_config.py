"""The CLI validates everything first: bad input -> one line naming the key, exit 2, nothing written.

Most cases call ``run.main`` in this process (the same code path, without ~4 s of interpreter and torch
start-up each); the real-subprocess tests at the end check what only a process shows: the exit code,
stderr, and that nothing started before the error.
"""

import os
import re
import shutil
import socket
import subprocess
import sys

import pytest
from helpers.procs import REPO, cli_env, cli_in_process, free_port, main_in_process, run_cli

from rlg_hotreload import build, config, run, schema

BAD = [
    (["reloadIntervl=5"], r"unknown key 'reloadIntervl'; did you mean 'reloadInterval'\?"),
    (["numEnvs=0"], r"numEnvs=0: allowed range is 1 to 1048576$"),
    (["testGamesNum=-1"], r"train\.testGamesNum=-1: must be >= 0$"),
    (["numEnvs=two"], r"numEnvs=two: must be a number"),
    (["reloadInterval=.nan"], r"train\.reloadInterval=nan: must be a number \(>= 0\)"),
    (["sim=mjc"], r"sim=mjc: allowed values are auto, mujoco, mjwarp, isaacgym; did you mean 'mujoco'\?"),
    (["train.test=maybe"], r"train.test=maybe: allowed values are true, false"),
    (
        ["config=test_vewer"],
        r"config=test_vewer: no such preset; allowed: .*test_viewer.*did you mean 'test_viewer'\?",
    ),
    (["train.swapAt=sometimes"], r"train.swapAt=sometimes: allowed values are auto, game, step"),
    (["--cfg", "nope.yaml"], r"--cfg nope.yaml: no such file; presets: test, .*train_headless"),
    (
        ["config=test", "task=Pendulum-v1", "checkpoint=missing/run"],
        r"train.checkpoint=missing/run: no such file or folder",
    ),
    (
        ["config=test", "task=Pendulum-v1", "checkpoint=./missing.pth"],
        r"train.checkpoint=./missing.pth: no such file in \.",
    ),
    (
        ["config=test", "task=NoSuchTask-v9"],
        r"task=NoSuchTask-v9: unknown task; allowed: BlindGrasping, or any",
    ),
    (["config=test", "task=CartPole-v1"], r"task=CartPole-v1: has discrete actions"),
    (
        ["config=train_headless", "task=Pendulum-v1", "train.config=nope.yaml"],
        r"train.config=nope.yaml: no such file",
    ),
    (
        ["config=test", "task=Pendulum-v1", "checkpoint=latest", "headless=false"],
        r"headless=false: no display",
    ),
    (["streamPort=70000"], r"stream.port=70000: allowed range is 1 to 65535"),
    (["maxCheckpointMB=0"], r"train.maxCheckpointMB=0: allowed range is 1 to 1048576$"),
    (["checkpoint"], r"'checkpoint': overrides are key=value"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_returns_2_with_one_line_naming_the_key(tmp_path, monkeypatch, capsys, args, message):
    code, lines = main_in_process(args, tmp_path, monkeypatch, capsys)
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("error: ") and re.search(message, lines[0]), lines[0]
    assert os.listdir(tmp_path) == [], "a failed start must write nothing"


def test_task_suggestions_and_allowed_list_name_only_tasks_that_run_here(tmp_path, monkeypatch, capsys):
    """rl-games registers 30+ tasks on vecenvs we do not run (ray, Atari, Flex): none is offered."""
    code, lines = main_in_process(["config=test", "task=Pendulm-v1"], tmp_path, monkeypatch, capsys)
    assert code == 2 and len(lines) == 1
    assert lines[0] == (
        "error: task=Pendulm-v1: unknown task; allowed: BlindGrasping, or any gymnasium id with continuous "
        "actions (e.g. Pendulum-v1); did you mean 'Pendulum-v1'?"
    )
    code, lines = main_in_process(["config=test", "task=Pendulum-v0"], tmp_path, monkeypatch, capsys)
    assert code == 2 and len(lines) == 1 and "on its RAY vecenv, which this plugin does not run" in lines[0]
    assert "Breakout" not in lines[0] and "did you mean 'Pendulum-v1'" in lines[0]


def test_yaml_errors_name_the_file_and_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "broken.yaml").write_text("train:\n  test: true\n  checkpoint: [latest\n")
    (tmp_path / "typo.yaml").write_text("numEnvs: 1\ntrain:\n  test: true\n  chekpoint: latest\n")
    (tmp_path / "value.yaml").write_text("numEnvs: 1\nstream:\n  port: 0\n")
    for name, message in [
        ("broken.yaml", r"^error: --cfg: broken\.yaml:3: not valid YAML: "),
        (
            "typo.yaml",
            r"^error: typo\.yaml:4: unknown key 'train\.chekpoint'; did you mean 'train\.checkpoint'\?",
        ),
        ("value.yaml", r"^error: value\.yaml:3: stream\.port=0: allowed range is 1 to 65535$"),
    ]:
        code, lines = main_in_process(["--cfg", name], tmp_path, monkeypatch, capsys)
        assert code == 2 and len(lines) == 1 and re.search(message, lines[0]), lines


def test_seed_spellings_map_to_canonical_keys():
    cfg = config.load(
        None,
        ["config=test_stream", "testGamesNum=0", "checkpoint=latest", "streamBindAll=true",
         "numEnvs=1", "train.reloadInterval=45", "train.checkpoint=runs/MyExperiment"],
    )  # fmt: skip
    assert cfg["train"]["test"] is True and cfg["stream"]["enabled"] is True
    assert cfg["stream"]["bindAll"] is True
    assert cfg["train"]["reloadInterval"] == 45.0
    assert cfg["train"]["checkpoint"] == "runs/MyExperiment"  # the later spelling wins
    assert cfg["numEnvs"] == 1


def test_presets_load_and_set_what_they_promise():
    viewer = config.load(os.path.join(REPO, "cfg", "test_viewer.yaml"), [])
    assert viewer["numEnvs"] == 4 and viewer["headless"] is False and viewer["train"]["test"]
    train = config.load(None, ["config=train_headless"])
    assert train["train"]["test"] is False and train["headless"] is True
    assert config.load(None, ["config=test"])["train"]["reloadInterval"] == 30.0


def test_shipped_presets_are_found_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no cfg/ here
    assert config.load("cfg/train_headless.yaml", [])["train"]["test"] is False
    assert config.load(None, ["config=test_stream"])["stream"]["enabled"] is True
    assert build.load_config(preset="cfg/test_viewer.yaml")["numEnvs"] == 4
    os.mkdir("cfg")  # your own cfg/NAME.yaml wins over the shipped one
    (tmp_path / "cfg" / "test.yaml").write_text("# mine\nnumEnvs: 7\n")
    assert config.load(None, ["config=test"])["numEnvs"] == 7


def test_defaults_come_from_the_schema_and_presets_only_override():
    assert config.load(None, []) == schema.defaults()
    assert not os.path.exists(os.path.join(REPO, "cfg", "base.yaml")), "defaults have one home: schema.py"
    for name in config.presets():
        data = config.read_yaml(config.find_cfg_file(name + ".yaml"), name)
        for key in config.flatten(data):
            assert schema.lookup(key) is not None, (name, key)


def test_the_generated_yaml_template_is_a_preset_of_all_defaults(tmp_path, capsys):
    assert schema.main(["--yaml"]) == 0
    (tmp_path / "all.yaml").write_text(capsys.readouterr().out)
    assert config.load(str(tmp_path / "all.yaml"), []) == schema.defaults()


def test_text_keys_keep_the_value_as_typed():
    """`streamToken=0777` is the token "0777" (YAML would make it the number 511); null still unsets."""
    cfg = config.load(None, ["streamToken=0777", "checkpoint=0x10", "task=1e3"])
    assert cfg["stream"]["token"] == "0777"
    assert cfg["train"]["checkpoint"] == "0x10" and cfg["task"] == "1e3"
    assert config.load(None, ["streamToken=null"])["stream"]["token"] is None
    assert config.load(None, ["maxCheckpointMB=64"])["train"]["maxCheckpointMB"] == 64


def test_readme_config_table_is_the_generated_one():
    with open(os.path.join(REPO, "README.md")) as f:
        table = schema.readme_table(f.read())
    assert table is not None, "README.md lost the config-table markers"
    assert table == schema.markdown_table(), (
        "README is stale: python -m rlg_hotreload.schema --update README.md"
    )


def test_help_lists_every_key_with_default_and_meaning_and_the_presets(capsys):
    with pytest.raises(SystemExit) as e:
        run.main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    flat = " ".join(text.split())  # meanings are wrapped
    for key in schema.KEYS:
        assert re.search(
            r"^  %s\b.* = %s   \[" % (re.escape(key.name), re.escape(schema.show(key.default))), text, re.M
        )
        assert " ".join(key.help.replace("`", "").split()) in flat, key.name
        for alias in key.aliases:
            assert "| %s =" % alias in text or "| %s |" % alias in text, alias
    for name, what in config.presets().items():
        assert re.search(r"^  %s +%s" % (name, re.escape(what)), text, re.M), name
    assert "python -m rlg_hotreload.run config=train_headless task=Pendulum-v1" in text


def test_usage_names_the_command_as_typed():
    assert run.typed_prog("/usr/local/bin/rlg-hotreload") == "rlg-hotreload"
    assert run.typed_prog(os.path.join(REPO, "rlg_hotreload", "run.py")) == "python -m rlg_hotreload.run"
    assert run.parser("rlg-hotreload").format_usage().startswith("usage: rlg-hotreload ")


def test_run_keeps_no_compatibility_aliases():
    for name in ("_register_task", "_train_config_path", "resolve_devices", "build_params"):
        assert not hasattr(run, name), name


def _take_port_block(n):
    """``n`` consecutive loopback ports held by listening sockets (a streamer gets none of them)."""
    for _ in range(20):
        base = free_port()
        held = []
        try:
            for p in range(base, base + n):
                s = socket.socket()
                held.append(s)
                s.bind(("127.0.0.1", p))
                s.listen(1)
            return base, held
        except OSError:
            for s in held:
                s.close()
    raise AssertionError("no block of %d free ports" % n)


def test_taken_stream_ports_fail_before_anything_is_built(tmp_path, monkeypatch, capsys):
    def never(*a, **k):
        raise AssertionError("make_params ran: the port must be checked before torch or a simulator")

    monkeypatch.setattr(build, "make_params", never)
    base, held = _take_port_block(10)
    try:
        code, lines = main_in_process(
            ["config=test_stream", "checkpoint=latest", "streamPort=%d" % base], tmp_path, monkeypatch, capsys
        )
    finally:
        for s in held:
            s.close()
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("error: streamPort=%d: no free port in %d..%d" % (base, base, base + 9)), lines


def test_a_bad_stream_host_exits_2_before_the_env_is_created(tmp_path, monkeypatch, capsys):
    """192.0.2.1 (TEST-NET-1) is never a local address: binding to it fails at once."""
    r = cli_in_process(["config=test_stream", "checkpoint=latest", "streamHost=192.0.2.1"], tmp_path, monkeypatch,
                       capsys)  # fmt: skip
    assert r.returncode == 2, r.stdout[-2000:] + r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: streamHost='192.0.2.1': cannot listen on port"), (
        lines
    )
    assert "Creating vecenv" not in r.stdout and "MuJoCo" not in r.stdout, r.stdout
    assert os.listdir(tmp_path) == []


# -- the real CLI in a subprocess ---------------------------------------------------------------------
@pytest.mark.integration
def test_cli_process_exits_2_with_one_line_and_writes_nothing(tmp_path):
    r = run_cli(["config=test", "reloadIntervl=5"], str(tmp_path), timeout=120)
    assert r.returncode == 2 and r.stderr.strip() == (
        "error: unknown key 'reloadIntervl'; did you mean 'reloadInterval'? (see the config reference in README.md)"
    ), r.stderr
    assert os.listdir(tmp_path) == []


@pytest.mark.integration
def test_version_and_the_console_script_usage(tmp_path):
    from rlg_hotreload import __version__

    r = subprocess.run([sys.executable, "-m", "rlg_hotreload.run", "--version"], cwd=str(tmp_path), env=cli_env(),
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert (
        r.returncode == 0
        and r.stdout.strip() == "python -m rlg_hotreload.run (rlg-hotreload) %s" % __version__
    )
    script = shutil.which("rlg-hotreload")
    if script is not None:  # installed (pip install -e .): its usage line names it as typed
        r = subprocess.run([script, "--help"], cwd=str(tmp_path), env=cli_env(), capture_output=True, text=True,
                           timeout=60)  # fmt: skip
        assert r.returncode == 0 and r.stdout.startswith("usage: rlg-hotreload "), r.stdout[:200] + r.stderr


@pytest.mark.slow
def test_any_continuous_gymnasium_id_trains_with_the_generic_config(tmp_path):
    r = run_cli(["config=train_headless", "task=MountainCarContinuous-v0", "maxEpochs=2"], str(tmp_path), 300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    link = tmp_path / "runs" / "latest_train"
    assert link.is_symlink() and os.readlink(link).startswith("MountainCarContinuous-v0_")
    assert list((link / "nn").glob("*.pth")), "no checkpoint written"
