"""The command-line layer of every hemix tool.

- Each tool keeps its flags in its own `FlagValues`, so importing one tool (tests, the demo, benchmarks
  import several) never redefines another's flags.
- `--help` / `-h` (and absl's `--helpshort`, `--helpfull`) print the tool's docstring and its own flags
  with their help and defaults, and exit 0. Tools import TensorFlow, TFX and Beam inside `main`, so help
  answers before any of them is loaded.
- A user error (a bad flag, a missing or malformed input, a refused output directory) prints one line,
  `<tool>: error: <what>`, and exits 2. `--verbose` shows the traceback instead, and the libraries' logs.
- Tools that pass the flags they do not know to Beam accept only options Beam's PipelineOptions knows:
  a typo is an error, not a silently ignored option. Any other tool takes no positional argument: the
  words of an unquoted value (`--models=DNN w/o sequences`) are an error, not dropped.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings

from absl import app, flags

HELP_FLAGS = ("--help", "-h", "-help", "--helpshort", "--helpfull", "-?")


class UserError(Exception):
  """A mistake in the command line or the inputs that the user can fix: reported in one line, exit 2."""


# What a user can cause and fix; anything else is a bug and keeps its traceback.
USER_ERRORS = (UserError, flags.Error, app.UsageError, OSError, ValueError)


def usage(doc: str, own: flags.FlagValues) -> str:
  """The tool's docstring, then its flags with their help and defaults."""
  defined = {f.name: f for module_flags in own.flags_by_module_dict().values() for f in module_flags}
  lines = [doc.strip(), "", "flags:"]
  for name, flag in sorted(defined.items()):
    default = "" if flag.default is None else f" (default: {flag.default_as_str})"
    lines.append(f"  --{name}: {flag.help}{default}")
  return "\n".join(lines)


def beam_unknown_options(args: list[str]) -> list[str]:
  """The arguments that no Beam PipelineOptions class accepts (Beam itself would drop them silently)."""
  from apache_beam.options.pipeline_options import PipelineOptions
  parser = argparse.ArgumentParser(allow_abbrev=False, add_help=False)
  seen, pending = set(), [PipelineOptions]
  while pending:
    cls = pending.pop()
    if cls in seen:
      continue
    seen.add(cls)
    cls._add_argparse_args(parser)  # pylint: disable=protected-access
    pending.extend(cls.__subclasses__())
  _, unknown = parser.parse_known_args(args)
  return unknown


def _quiet(uses_tensorflow: bool) -> None:
  """Library logs off by default: TensorFlow's C++ (CUDA probing, oneDNN), absl, Beam, warnings.

  TensorFlow's import prints its C++ notices before its log level applies (TF_CPP_MIN_LOG_LEVEL does not
  reach them), so a tool that uses TensorFlow imports it here with the process's stderr closed."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  warnings.filterwarnings("ignore")
  logging.getLogger().setLevel(logging.ERROR)
  from absl import logging as absl_logging
  absl_logging.set_verbosity(absl_logging.ERROR)
  if uses_tensorflow and "tensorflow" not in sys.modules:
    sys.stderr.flush()
    saved = os.dup(2)
    try:
      with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        import tensorflow  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    finally:
      os.dup2(saved, 2)
      os.close(saved)


def run(main, own: flags.FlagValues, doc: str, beam_options: bool = False, uses_tensorflow: bool = True) -> None:
  """Parses sys.argv with `own`, then calls main(argv) (argv[1:]: the Beam options when `beam_options`).

  Exits 0 after help, 2 on a user error (one line unless --verbose)."""
  tool = os.path.basename(sys.argv[0]) or "hemix"
  if "verbose" not in own:
    flags.DEFINE_bool("verbose", False, "Show tracebacks and the libraries' logs.", flag_values=own)
  argv = list(sys.argv)
  if any(arg in HELP_FLAGS for arg in argv[1:]):
    print(usage(doc, own))
    sys.exit(0)

  def fail(message: str) -> None:
    print(f"{tool}: error: {message}", file=sys.stderr)
    sys.exit(2)

  try:
    argv = own(argv, known_only=beam_options)
  except flags.Error as e:
    fail(f"{e} (see {tool} --help)")
  if not own.verbose:
    _quiet(uses_tensorflow)
  flags.FLAGS(argv[:1])  # absl's global flags at their defaults: absl logging expects them parsed
  try:
    if beam_options:
      unknown = beam_unknown_options(argv[1:])
      if unknown:
        raise UserError(f"unknown flags {' '.join(unknown)}: neither this tool's (see {tool} --help) "
                        "nor Beam pipeline options")
    elif argv[1:]:
      raise UserError(f"unexpected arguments {' '.join(argv[1:])}: this tool takes flags only (a value "
                      "with spaces needs quotes)")
    main(argv)
  except USER_ERRORS as e:
    if own.verbose:
      raise
    fail(f"{str(e).strip() or type(e).__name__} (--verbose for the traceback)")
