"""Packaging: `pip install .` brings every distribution the package imports; no product path reaches
outside the repository; the TFDV shim fails loudly instead of silently."""
import ast
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
PRODUCT = [p for d in ("hemix_tf", "pipelines") for p in (ROOT / d).rglob("*.py")]


def _imported_top_level_modules() -> set[str]:
  names = set()
  for path in PRODUCT:
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.Import):
        names.update(a.name.split(".")[0] for a in node.names)
      elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        names.add(node.module.split(".")[0])
  return names - set(sys.stdlib_module_names) - {"hemix_tf", "pipelines", "__future__"}


def _normalized(name: str) -> str:
  return re.sub(r"[-_.]+", "-", name).lower()


def test_install_requires_lists_every_imported_distribution():
  setup = (ROOT / "setup.py").read_text()
  required = {_normalized(re.split(r"[=<>!~ ]", r)[0])
              for r in ast.literal_eval(re.search(r"install_requires=(\[.*?\])", setup, re.S).group(1))}
  providers = importlib.metadata.packages_distributions()
  missing = {}
  for module in _imported_top_level_modules():
    dists = {_normalized(d) for d in providers.get(module, [])}
    assert dists, f"{module}: imported but installed by no distribution"
    if not dists & required:
      missing[module] = sorted(dists)
  assert not missing, f"imported but not in install_requires: {missing}"


def test_no_product_path_reaches_outside_the_repository():
  offenders = [str(p.relative_to(ROOT)) for p in PRODUCT if "../shared" in p.read_text()
               or re.search(r"parents\[\d\]\s*/\s*\"shared\"", p.read_text())]
  assert not offenders


def test_the_tfdv_shim_raises_on_use():
  code = ("from tfx_bsl.arrow import sql_util\n"
          "try:\n  sql_util.RecordBatchSQLSliceQuery('select 1', None)\n"
          "except NotImplementedError as e:\n  assert 'removed in tfx-bsl 1.21' in str(e)\n"
          "else:\n  raise SystemExit('no error')\n")
  subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=120)
