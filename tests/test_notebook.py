"""A notebook runs the tour and shows tables and figures (issue 11, Jupyter)."""
import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="nbformat not installed (test extra)")
nbclient = pytest.importorskip("nbclient", reason="nbclient not installed (test extra)")
pytest.importorskip("ipykernel", reason="ipykernel not installed (test extra)")

SRC = Path(__file__).resolve().parents[1] / "src"


def test_notebook_shows_report_tables_and_figures(monkeypatch, tmp_path):
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        pytest.skip("no python3 kernel spec")
    # the kernel inherits this environment: the package from this checkout
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    cells = [
        "import sys\nprint(sys.executable)",
        "import pylme_alliance as pa\nsim = pa.simulate(n_patients=60, seed=1)",
        "panel = pa.prepare(sim.data, patient='patient', session='session', alliance='alliance', "
        "outcome='outcome')\npanel",
        "pa.analyze(panel, leads=(1,))",
        # a figure the package makes shows as an image, whatever the backend
        "from pylme_alliance.simulation.power_result import PowerResult\nimport pandas as pd\n"
        "PowerResult(table=pd.DataFrame({'n_patients': [40, 80], 'effect': ['within'] * 2, 'power': [.3, .6], "
        "'power_lo': [.1, .4], 'power_hi': [.5, .8]}), replicates=pd.DataFrame(), design=('n_patients',)).figure()",
        # without ipywidgets a bar is one output updated in place, left empty
        "from pylme_alliance.progress import progress_bar\nsum(progress_bar(range(40), desc='counting'))",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=600,
                            resources={"metadata": {"path": str(tmp_path)}}).execute()

    printed = "".join(o.get("text", "") for o in nb.cells[0].outputs)
    if Path(spec.argv[0]).name.startswith("python") and spec.argv[0] != sys.executable:
        assert Path(printed.strip()).resolve().parent == Path(sys.executable).resolve().parent
    panel_html = [o["data"]["text/html"] for o in nb.cells[2].outputs if "text/html" in o.get("data", {})]
    assert panel_html and "<table" in panel_html[0]
    report_html = "".join(o["data"]["text/html"] for o in nb.cells[3].outputs if "text/html" in o.get("data", {}))
    assert "<table" in report_html
    assert "<img" in report_html
    assert "IProgress" not in "".join(o.get("text", "") for c in nb.cells for o in c.outputs)
    figure = [o for o in nb.cells[4].outputs if "image/png" in o.get("data", {})]
    assert figure, nb.cells[4].outputs
    # no progress history on stderr, in any cell (the exported notebook keeps outputs)
    assert not [o for c in nb.cells for o in c.outputs if o.get("name") == "stderr"]
    shown = [o["data"].get("text/plain", "") for o in nb.cells[5].outputs if o["output_type"] == "display_data"]
    assert all(text == "" for text in shown)
    assert nb.cells[5].outputs[-1]["data"]["text/plain"] == str(sum(range(40)))
