"""The citation contract end to end: a citation's `page` is the page of the quoted text.

Documents whose chunks span pages (paragraphs flowing over page breaks, TIFF frames) and a deck
of untitled slides go through the real ingestion and /api/chat with the offline answerer.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import EmulatorEndpoints
from tests.fixtures import documents
from tests.test_chat import ask
from tests.test_ingestion import Deployment, deploy

pytestmark = pytest.mark.emulators


@pytest.fixture(scope="module")
def app(
    tmp_path_factory: pytest.TempPathFactory, emulators: EmulatorEndpoints
) -> Iterator[Deployment]:
    for deployment in deploy(tmp_path_factory.mktemp("citations"), emulators):
        uploads = {
            "flowing.pdf": documents.flowing_pdf(),
            "slides.pptx": documents.plain_slides(),
            "frames.tiff": documents.multipage_tiff(),
        }
        ids = {name: deployment.upload(f"kb/{name}", content) for name, content in uploads.items()}
        for doc_id in ids.values():
            assert deployment.wait_done(doc_id)["state"] == "succeeded"
        deployment.ids = ids  # type: ignore[attr-defined]
        yield deployment


def cited(app: Deployment, question: str) -> dict:
    status, _, body = ask(app, [{"role": "user", "content": question}])
    assert status == 200, body
    assert body["citations"], body
    return body


def test_a_fact_inside_a_multi_page_chunk_cites_its_own_page(app: Deployment) -> None:
    chunks = app.chunks(app.ids["flowing.pdf"])
    assert any(len(chunk["pages"]) > 1 for chunk in chunks)  # the case under test
    for question, fact, page in [
        ("How deep is the dredged channel?", documents.FLOWING_FACTS[1], 2),
        ("How often do tug crews rotate?", documents.FLOWING_FACTS[2], 3),
        ("When does the pilot boat leave the quay?", documents.FLOWING_FACTS[0], 1),
    ]:
        body = cited(app, question)
        citation = body["citations"][0]
        assert fact.rstrip(".") in body["answer"]
        assert citation["page"] == page, (question, citation)
        assert page in citation["pages"] and fact in citation["quote"]


def test_each_slide_is_its_own_chunk_and_cited_alone(app: Deployment) -> None:
    chunks = app.chunks(app.ids["slides.pptx"])
    assert sorted(chunk["pages"] for chunk in chunks) == [[1], [2], [3], [4]]
    body = cited(app, "What does the canteen serve on Thursdays?")
    citation = body["citations"][0]
    assert "lentil soup" in body["answer"]
    assert (citation["page"], citation["pages"]) == (2, [2])
    assert citation["document_name"] == "kb/slides.pptx"


def test_the_second_frame_of_a_tiff_is_cited_as_page_two(app: Deployment) -> None:
    chunks = app.chunks(app.ids["frames.tiff"])
    assert any(chunk["pages"] == [1, 2] for chunk in chunks)  # both frames in one chunk
    body = cited(app, "What is the shipping schedule?")
    citation = body["citations"][0]
    assert "Shipping schedule for March" in body["answer"]
    assert (citation["page"], citation["pages"]) == (2, [1, 2])
