"""azd's files agree with the template and the app: the parameters file names only parameters
main.bicep declares, the service is the Function App azd finds by its tag, the postdeploy hook
reads outputs main.bicep produces, and the deployment package holds the app and nothing local."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

from scripts.azd.package import build
from tests.infra.test_bicep import INFRA, parsed

ROOT = INFRA.parent


def test_the_parameters_file_sets_only_declared_parameters() -> None:
    declared = parsed(INFRA / "main.bicep")["parameters"]
    given = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert set(given) <= set(declared), set(given) - set(declared)
    required = {name for name, spec in declared.items() if spec.get("default") is None}
    assert required <= set(given), f"azd cannot fill {required - set(given)}"


def test_azure_yaml_deploys_the_function_app_tagged_api_and_runs_the_hook() -> None:
    text = (ROOT / "azure.yaml").read_text()
    assert re.search(
        r"services:\n  api:\n    project: \.\n    language: python\n    host: function", text
    )
    hook = re.search(r"run: (\S+)", text)[1]
    assert (ROOT / hook).is_file()
    assert (
        "azd-service-name': azdServiceName"
        in (INFRA / "modules" / "function-app.bicep").read_text()
    )
    assert "azdServiceName: index == 0 ? 'api' : ''" in (INFRA / "main.bicep").read_text()


def test_the_hook_reads_only_outputs_the_template_produces() -> None:
    outputs = set(parsed(INFRA / "main.bicep")["outputs"])
    hook = (ROOT / "scripts" / "azd" / "postdeploy.sh").read_text()
    used = set(re.findall(r"\b(AZURE_[A-Z_]+|DOCGATE_[A-Z_]+)\b", hook))
    # The environment's own values and the hook's flag are not outputs.
    assert used - {"DOCGATE_BLOB_WEBHOOK"} <= outputs, used - outputs


def test_the_package_holds_the_app_and_nothing_local(tmp_path: Path) -> None:
    target = tmp_path / "docgate.zip"
    build(target)
    names = zipfile.ZipFile(target).namelist()
    for needed in ("function_app.py", "host.json", "requirements.txt"):
        assert needed in names
    assert any(name.startswith("shared/") for name in names)
    assert any(name.startswith("activities/") for name in names)
    for local in ("tests/", "devhost/", "bench/", "emulators/", "infra/", ".venv", "node_modules"):
        assert not any(name.startswith(local) for name in names), local
    assert "local.settings.json" not in names and "local.settings.sample.json" not in names
