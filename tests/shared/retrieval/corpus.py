"""A generated, labelled retrieval corpus: eleven small company documents and 34 questions.

Each section of a document becomes one chunk (heading path first, as the chunker writes it), on
the page the document puts it. Questions are labelled with the document and page that answer
them and are of two kinds: paraphrases, which share few words with the answer (vectors should
win), and exact terms such as codes and names (keywords should win). Used by the retrieval
tests and by bench/retrieval.py.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from shared.documents.index import LIVE, ChunkDraft, chunk_ids, chunk_item
from shared.embeddings import Embedder

TENANT_WIDE = {"users": [], "groups": [], "tenant_wide": True}


@dataclass(frozen=True)
class Section:
    """One heading and its text, on one page."""

    page: int
    heading: str
    text: str


@dataclass(frozen=True)
class Document:
    """A generated document: name, media type, title and sections."""

    name: str
    media_type: str
    title: str
    sections: tuple[Section, ...]


@dataclass(frozen=True)
class Question:
    """A question and where its answer is."""

    text: str
    document: str
    page: int
    kind: str  # "paraphrase" or "exact"


PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
DOCUMENTS: tuple[Document, ...] = (
    Document(
        "travel-policy.pdf",
        PDF,
        "Travel Policy",
        (
            Section(
                1,
                "Booking flights",
                "Employees book economy class for flights under six "
                "hours. Business class is allowed for longer flights with director approval.",
            ),
            Section(
                2,
                "Hotels",
                "Hotel stays are capped at 180 EUR per night in Europe and 250 "
                "USD per night in North America, breakfast included.",
            ),
            Section(
                3,
                "Per diem",
                "Meals are reimbursed at a daily rate of 45 EUR. Alcohol is never reimbursed.",
            ),
        ),
    ),
    Document(
        "security-standard.pdf",
        PDF,
        "Information Security Standard",
        (
            Section(
                1,
                "Passwords",
                "Passwords must be at least 14 characters long and are "
                "rotated only after a suspected compromise.",
            ),
            Section(
                2,
                "Multi-factor authentication",
                "A hardware security key is mandatory for "
                "administrators; push notifications are accepted for other staff.",
            ),
            Section(
                3,
                "Incident reporting",
                "Report suspected phishing to the security "
                "operations centre within 30 minutes using ticket code SEC-911.",
            ),
        ),
    ),
    Document(
        "annual-report-2023.pdf",
        PDF,
        "Annual Report 2023",
        (
            Section(
                1,
                "Revenue",
                "Revenue for fiscal 2023 reached 412 million dollars, up 9 "
                "percent on the prior year.",
            ),
            Section(
                2,
                "Regional performance",
                "In 2023 the southern region grew fastest at 14 "
                "percent, while the northern region declined 2 percent.",
            ),
            Section(
                3,
                "Outlook",
                "Management expects margins to improve as the new Rotterdam hub opens next spring.",
            ),
        ),
    ),
    Document(
        "annual-report-2022.pdf",
        PDF,
        "Annual Report 2022",
        (
            Section(
                1,
                "Revenue",
                "Revenue for fiscal 2022 was 378 million dollars, up 4 percent on the prior year.",
            ),
            Section(
                2,
                "Regional performance",
                "In 2022 the northern region led growth at 7 "
                "percent and the southern region was flat.",
            ),
        ),
    ),
    Document(
        "xr2210-manual.pdf",
        PDF,
        "XR-2210 Scanner Manual",
        (
            Section(
                1,
                "Overview",
                "The XR-2210 is a handheld barcode scanner for warehouse "
                "picking, with a rugged case rated IP65.",
            ),
            Section(
                2,
                "Battery",
                "A full battery lasts 14 hours of scanning. Recharge it in the dock for 3 hours.",
            ),
            Section(
                3,
                "Error codes",
                "Error E-47 means the scan window is dirty: wipe it with a dry microfibre cloth.",
            ),
            Section(
                4,
                "Warranty",
                "The XR-2210 carries a 24 month warranty covering parts and "
                "labour, excluding drops.",
            ),
        ),
    ),
    Document(
        "leave-policy.docx",
        DOCX,
        "Leave Policy",
        (
            Section(
                1,
                "Annual leave",
                "Full-time staff receive 27 days of paid holiday a year, plus public holidays.",
            ),
            Section(
                2,
                "Parental leave",
                "Birth parents receive 26 weeks on full pay; partners receive 4 weeks on full pay.",
            ),
            Section(
                3,
                "Sick leave",
                "A doctor's note is required after 5 consecutive days of absence through illness.",
            ),
        ),
    ),
    Document(
        "it-onboarding.md",
        "text/markdown",
        "IT Onboarding",
        (
            Section(
                1,
                "Laptop setup",
                "New starters collect their laptop from the service desk on "
                "level 2 before nine on their first morning.",
            ),
            Section(
                1,
                "VPN",
                "Install the GlobalConnect client version 6.2 to reach internal systems from home.",
            ),
            Section(
                2,
                "Accounts",
                "Your email account is created two days before you start; the "
                "password arrives by text message.",
            ),
        ),
    ),
    Document(
        "warehouse-safety.pdf",
        PDF,
        "Warehouse Safety Rules",
        (
            Section(
                1,
                "Forklifts",
                "Only certified drivers may operate forklifts; certification "
                "is renewed every 3 years.",
            ),
            Section(
                2,
                "Protective equipment",
                "Steel-toe boots and high-visibility vests are mandatory on the warehouse floor.",
            ),
            Section(
                3,
                "Fire evacuation",
                "On hearing the alarm leave by the nearest exit and go "
                "to assembly point B in the north car park.",
            ),
        ),
    ),
    Document(
        "procurement-guide.pdf",
        PDF,
        "Procurement Guide",
        (
            Section(
                1,
                "Approval thresholds",
                "Purchases above 10,000 EUR need two written "
                "quotes; purchases above 50,000 EUR need a public tender.",
            ),
            Section(
                2,
                "Preferred suppliers",
                "Office furniture is bought from Nordwood AB under framework contract PO-5531.",
            ),
        ),
    ),
    Document(
        "support-playbook.pdf",
        PDF,
        "Customer Support Playbook",
        (
            Section(
                1,
                "Response times",
                "Priority 1 tickets are answered within 15 minutes, "
                "around the clock; priority 3 tickets within two working days.",
            ),
            Section(2, "Refunds", "Agents may refund up to 200 EUR without a manager's approval."),
            Section(
                3,
                "Escalation",
                "Unresolved priority 1 tickets go to the duty engineer after one hour.",
            ),
        ),
    ),
    Document(
        "expenses-faq.html",
        "text/html",
        "Expenses FAQ",
        (
            Section(1, "Mileage", "Private car journeys are reimbursed at 0.30 EUR per kilometre."),
            Section(2, "Receipts", "Submit receipts within 60 days through the Expensify app."),
        ),
    ),
)

QUESTIONS: tuple[Question, ...] = (
    Question("Can I fly business class on a long trip?", "travel-policy.pdf", 1, "paraphrase"),
    Question(
        "What is the most I can spend on a room per night in Europe?",
        "travel-policy.pdf",
        2,
        "paraphrase",
    ),
    Question("Is wine with dinner covered on expenses?", "travel-policy.pdf", 3, "paraphrase"),
    Question("How long does my login secret have to be?", "security-standard.pdf", 1, "paraphrase"),
    Question(
        "What second factor do admins need to sign in?", "security-standard.pdf", 2, "paraphrase"
    ),
    Question(
        "How quickly must I flag a suspicious email?", "security-standard.pdf", 3, "paraphrase"
    ),
    Question(
        "How much money did the company make in 2023?", "annual-report-2023.pdf", 1, "paraphrase"
    ),
    Question(
        "Which part of the country grew the most in 2023?",
        "annual-report-2023.pdf",
        2,
        "paraphrase",
    ),
    Question(
        "How long does the handheld scanner run on one charge?",
        "xr2210-manual.pdf",
        2,
        "paraphrase",
    ),
    Question(
        "How many vacation days do full-time employees get?", "leave-policy.docx", 1, "paraphrase"
    ),
    Question("How much time off do new mothers get?", "leave-policy.docx", 2, "paraphrase"),
    Question(
        "When do I need a medical certificate for being ill?", "leave-policy.docx", 3, "paraphrase"
    ),
    Question(
        "Where do I pick up my computer on my first day?", "it-onboarding.md", 1, "paraphrase"
    ),
    Question("Who is allowed to drive the lift trucks?", "warehouse-safety.pdf", 1, "paraphrase"),
    Question("What shoes must I wear in the warehouse?", "warehouse-safety.pdf", 2, "paraphrase"),
    Question(
        "Where do we gather when the fire alarm goes off?", "warehouse-safety.pdf", 3, "paraphrase"
    ),
    Question(
        "When is a formal tender needed for buying something?",
        "procurement-guide.pdf",
        1,
        "paraphrase",
    ),
    Question(
        "How fast must we answer the most urgent customer issues?",
        "support-playbook.pdf",
        1,
        "paraphrase",
    ),
    Question(
        "How much money can a support agent give back without asking a manager?",
        "support-playbook.pdf",
        2,
        "paraphrase",
    ),
    Question(
        "How much do I get back for driving my own car for work?",
        "expenses-faq.html",
        1,
        "paraphrase",
    ),
    Question("How long do I have to hand in my receipts?", "expenses-faq.html", 2, "paraphrase"),
    Question(
        "How many weeks of parental leave does a partner get?", "leave-policy.docx", 2, "paraphrase"
    ),
    Question("SEC-911", "security-standard.pdf", 3, "exact"),
    Question("contract PO-5531", "procurement-guide.pdf", 2, "exact"),
    Question("GlobalConnect 6.2", "it-onboarding.md", 1, "exact"),
    Question("XR-2210 warranty months", "xr2210-manual.pdf", 4, "exact"),
    Question("Nordwood AB", "procurement-guide.pdf", 2, "exact"),
    Question("E-47", "xr2210-manual.pdf", 3, "exact"),
    Question("Rotterdam hub", "annual-report-2023.pdf", 3, "exact"),
    Question("fiscal 2022 revenue 378 million", "annual-report-2022.pdf", 1, "exact"),
    Question("27 days paid holiday", "leave-policy.docx", 1, "exact"),
    Question("0.30 EUR per kilometre", "expenses-faq.html", 1, "exact"),
    Question("assembly point B", "warehouse-safety.pdf", 3, "exact"),
    Question("Expensify", "expenses-faq.html", 2, "exact"),
)


def document_id(name: str) -> str:
    """A stable id for a generated document."""
    return hashlib.sha256(name.encode()).hexdigest()[:32]


def section_text(document: Document, section: Section) -> str:
    """A chunk's text as the chunker writes it: heading path, blank line, body."""
    return f"# {document.title} > ## {section.heading}\n\n{section.text}"


async def chunk_items(
    embedder: Embedder, tenant: str, acl: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Every section of every document as a live chunk item with its embedding."""
    pairs = [(document, section) for document in DOCUMENTS for section in document.sections]
    vectors = await embedder.embed([section_text(d, s) for d, s in pairs])
    items = []
    for document in DOCUMENTS:
        drafts = [
            ChunkDraft(
                "text",
                section_text(document, s),
                [s.page],
                [document.title, s.heading],
                vectors[pairs.index((document, s))],
            )
            for s in document.sections
        ]
        record = {
            "tenant": tenant,
            "id": document_id(document.name),
            "name": document.name,
            "media_type": document.media_type,
            "acl": acl or TENANT_WIDE,
            "sha256": document_id(document.name + "v1"),
        }
        ids = chunk_ids(record["id"], drafts, embedder.model)
        for chunk_id, draft in zip(ids, drafts, strict=True):
            items.append({**chunk_item(chunk_id, draft, record, embedder.model), "status": LIVE})
    return items


__all__ = ["DOCUMENTS", "QUESTIONS", "Document", "Question", "Section", "chunk_items"]
