from vaekit.cli import run

run()
