"""The command line for a newcomer: help that lists the choices and needs no torch,
no silent abbreviations, the nearest flag or name on a typo, Ctrl-C while starting up."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from vaekit.cli import main
from vaekit.cli.parser import build_parser
from vaekit.cli.suggest import improve


def _help(*argv: str) -> str:
    with pytest.raises(SystemExit):
        build_parser().parse_args([*argv, "--help"])
    return ""


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["train"], ["{auto,cpu,cuda}", "{fp32,bf16,fp16}", "architecture: mlp, conv", "hvae"]),
        (["sample"], ["{auto,cpu,cuda}", "PNG file", "seed of the prior draws", "--threads"]),
        (["evaluate"], ["{fp32,bf16,fp16}", "{auto,cpu,cuda}"]),
        (["export"], ["{safetensors,onnx,folder}"]),
        (
            ["score"],
            ["(default: 100)", "{train,validation,test,all}", "--classes", "most anomalous"],
        ),
        (["encode"], [".npz (named arrays) or .csv", "--data DATA"]),
        (["train"], ["--label-column", "{none,mean}", "--classes", "mixed (tables"]),
    ],
)
def test_help_lists_the_choices(argv, shown, capsys):
    _help(*argv)
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for fragment in shown:
        assert fragment in text, fragment


def test_help_does_not_import_torch():
    """`vaekit --help` and a subcommand's help in a fresh interpreter: torch never loads."""
    code = (
        "import sys\n"
        "from vaekit.cli import main\n"
        "for argv in (['--help'], ['train', '--help'], ['evaluate', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO TORCH')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().endswith("NO TORCH")


def test_abbreviations_are_refused(capsys):
    assert main(["train", "--epoch", "1"]) == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --epoch" in err and "did you mean --epochs?" in err


@pytest.mark.parametrize(
    ("argv", "suggestion"),
    [
        (["train", "--modle", "mlp"], "did you mean --model?"),
        (["train", "--model", "cnn"], "did you mean conv?"),
        (["sample", "--pretrained", "mnist-seed", "--devise", "cpu"], "did you mean --device?"),
        (["evaluate", "RUN", "--precision", "fp23"], "did you mean fp32?"),
    ],
)
def test_typos_get_the_nearest_flag_or_name(argv, suggestion, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.endswith(suggestion), err


def test_no_suggestion_when_nothing_is_close():
    message = "unrecognized arguments: --zzzzzz"
    assert improve(message, ["--model", "--epochs"]) == message


def test_ctrl_c_while_importing_prints_one_line(tmp_path):
    """SIGINT during start-up (torch still importing): one line, exit 130, no traceback."""
    argv = [sys.executable, "-m", "vaekit", "sample", "--pretrained", "mnist-seed"]
    proc = subprocess.Popen([*argv, "-o", str(tmp_path / "s.png")], stderr=subprocess.PIPE)
    time.sleep(0.5)  # past the interpreter's start, inside the command's imports
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    lines = err.decode().strip().splitlines()
    if proc.returncode == 0:
        pytest.skip("the command finished before the signal arrived")
    assert proc.returncode == 130 and lines == ["vaekit: interrupted"], lines


def test_the_cli_sets_the_chosen_thread_count(tmp_path):
    """--threads reaches torch; without it the count is the idle cores (at least 1)."""
    code = (
        "import json, sys, torch\n"
        "from vaekit.cli import entry, commands\n"
        "seen = []\n"
        "commands.COMMANDS['models'] = lambda args: seen.append(torch.get_num_threads())\n"
        "entry.main(['models'])\n"
        "commands.COMMANDS['sample'] = lambda args: seen.append(torch.get_num_threads())\n"
        "entry.main(['sample', '--pretrained', 'mnist-seed', '--threads', '1'])\n"
        "print(json.dumps(seen))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    default, one = json.loads(done.stdout)
    assert one == 1 and default >= 1
