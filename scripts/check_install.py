"""Check an installed (non-editable) dmstore: it is imported from site-packages, every module
of the package imports, the SQL and schemas ship, and the CLI answers --help. Run by .ci/run
with the Python of a second virtual environment that holds the built wheel:

    python CHECKOUT/scripts/check_install.py CHECKOUT   # from any folder but the checkout's root

With CHECKOUT, every module of CHECKOUT/dmstore must be among the installed ones.
"""
import importlib
import importlib.resources
import pkgutil
import subprocess
import sys
from pathlib import Path

import dmstore

here = Path(dmstore.__file__).resolve().parent
assert "site-packages" in here.parts, f"dmstore imported from {here}, not from an installed wheel"
names = sorted(m.name for m in pkgutil.walk_packages(dmstore.__path__, "dmstore.") if not m.name.endswith("__main__"))
for name in names:
    importlib.import_module(name)
if len(sys.argv) > 1:
    src = Path(sys.argv[1]).resolve() / "dmstore"
    want = {".".join(("dmstore", *p.relative_to(src).with_suffix("").parts)).removesuffix(".__init__")
            for p in src.rglob("*.py") if p.name != "__main__.py"}
    lost = sorted(want - set(names) - {"dmstore"})
    assert not lost, f"the wheel lacks {len(lost)} module(s) of the checkout, e.g. {lost[:5]}"
sql = importlib.resources.files("dmstore.sql")
assert sql.joinpath("eval_metrics.sql").is_file() and sql.joinpath("internal", "compare.sql").is_file() \
    and sql.joinpath("spark").is_dir(), "the SQL files did not ship"
assert importlib.resources.files("dmstore.schemas").joinpath("store.json").is_file(), "the schemas did not ship"
if len(sys.argv) > 1:   # every data file of the checkout ships: SQL, schemas, the explorer's templates and static files
    root = Path(sys.argv[1]).resolve()
    data = {"dmstore.sql": (root / "sql", "**/*.sql"), "dmstore.schemas": (root / "schemas", "*.json"),
            "dmstore.serve": (root / "dmstore" / "serve", "[st]*/**/*.*")}
    missing = [f"{pkg}/{f.relative_to(base)}" for pkg, (base, pattern) in data.items() for f in base.glob(pattern)
               if f.suffix != ".py" and not importlib.resources.files(pkg).joinpath(*f.relative_to(base).parts).is_file()]
    assert not missing, f"the wheel lacks {len(missing)} data file(s) of the checkout, e.g. {missing[:5]}"
exe = Path(sys.executable).with_name("dmstore")
for args in ([], ["demo"], ["attribute"]):
    out = subprocess.run([str(exe), *args, "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "Usage: dmstore" in out.stdout, (args, out.stderr)
print(f"installed wheel OK: {len(names)} modules of {here} import; SQL, schemas, the explorer's files and the CLI are there")
