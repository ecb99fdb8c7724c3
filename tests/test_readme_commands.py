"""Every ``rnnkit ...`` command in the README's code blocks parses with today's CLI.

The README is the first thing a user copies from; a renamed flag must fail here, not on their machine.
(What the commands compute is measured in benchmarks/ and tested in the application tests.)
"""

import os
import re
import shlex

import pytest

from rnnkit.cli.main import build_parser

README = os.path.join(os.path.dirname(__file__), "..", "README.md")


def _commands():
    with open(README, encoding="utf-8") as f:
        text = f.read()
    found = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).replace("[--torch]", "").strip()
            if "rnnkit " in line and not line.startswith(("python ", "pip ")):
                found.append(line[line.index("rnnkit "):])
            elif line.startswith("pip ") and "&& rnnkit " in line:
                found.append(line[line.index("rnnkit "):])
    return found


COMMANDS = _commands()


def test_the_readme_has_commands_for_every_application():
    apps = {c.split()[1] for c in COMMANDS}
    assert {"charlm", "forecast", "translate", "bench", "info"} <= apps, apps


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_parses(command, capsys):
    parser = build_parser()
    try:
        args = parser.parse_args(shlex.split(command)[1:])
    except SystemExit:
        pytest.fail(f"the README's `{command}` no longer parses: {capsys.readouterr().err.strip()}")
    assert callable(args.func)
