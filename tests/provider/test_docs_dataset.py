"""The stratum_dataset page documents its schema and embeds its examples, and the example applies and imports (e2e)."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest

from provider.resource_dataset import DatasetResource
from tests.provider.test_docs import DOCS, EXAMPLES, test_every_attribute_is_documented_and_the_example_is_embedded as check_page
from tests.provider.test_e2e_dataset import traffic_csv
from tests.provider.tfharness import Step, run_steps

PAGE, EXAMPLE = "resources/dataset.md", "resources/stratum_dataset/resource.tf"
IMPORT = EXAMPLES / "resources/stratum_dataset/import.sh"


def test_every_attribute_is_documented_and_the_example_is_embedded():
    check_page(PAGE, DatasetResource.get_schema(), EXAMPLE)


def test_import_example_is_embedded():
    assert IMPORT.read_text().strip() in (DOCS / PAGE).read_text()


@pytest.mark.e2e
def test_dataset_example_applies_and_imports(ws, admin):
    data = ws.dir / "data"
    data.mkdir(parents=True)
    (data / "traffic.csv").write_bytes(traffic_csv(30))
    with sqlite3.connect(data / "sensors.db") as conn:
        conn.execute("CREATE TABLE readings (sensor TEXT, hour INTEGER, value REAL)")
        conn.executemany("INSERT INTO readings VALUES (?, ?, ?)", [("a", h, None if h == 3 else h * 1.5) for h in range(10)])
    conn.close()
    address, name = IMPORT.read_text().split("terraform import ")[1].split()
    run_steps(ws, [Step(ws.provider + (EXAMPLES / EXAMPLE).read_text(), import_address=address, import_id=name)])
    res = ws.resources()
    assert res[address]["digest"] == "sha256:" + hashlib.sha256(traffic_csv(30)).hexdigest()
    assert res["stratum_dataset.readings"]["row_count"] == 9
    assert ws.outputs()["traffic_columns"] == {"hour": "integer", "cars": "integer", "weather": "string", "congested": "integer"}
