"""Each command line tool keeps its flags in its own `FlagValues`, so importing one tool (tests, the
demo, benchmarks import several) never redefines another's flags. `run` starts a tool with absl."""
import sys

from absl import app, flags


def run(main, own: flags.FlagValues, known_only: bool = False) -> None:
  """app.run(main) parsing `own` (unknown flags are left in argv when `known_only`, e.g. for Beam)."""
  def parse(argv):
    flags.FLAGS(argv[:1])  # absl's global flags at their defaults: app.run needs them parsed
    try:
      return own(argv, known_only=known_only)
    except flags.Error as e:
      sys.exit(f"{argv[0]}: {e}\nTry --helpfull, or see the module docstring.")
  app.run(main, flags_parser=parse)
