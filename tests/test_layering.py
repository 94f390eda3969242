import subprocess
import sys


def test_core_never_imports_ui_libraries():
    code = (
        "import sys, pkgutil, importlib, core; "
        "[importlib.import_module('core.' + m.name) for m in pkgutil.iter_modules(core.__path__)]; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('streamlit', 'plotly')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
