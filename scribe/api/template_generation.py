"""Template generation from a resume (``POST /api/templates/``): PDF text → generator model →
a 150-250 word template with ``{{placeholders}}``."""

from __future__ import annotations

import logging
import re

from pydantic import BaseModel, field_validator

from scribe.clients import Clients
from scribe.clients.llm import LLM, LLMRequest, LLMResponse
from scribe.clients.pdf import MAX_PDF_BYTES, resume_text
from scribe.domain.placeholders import PLACEHOLDER
from scribe.domain.text import remove_machine_tells
from scribe.errors import (
    InvalidRequest,
    PdfTooExpensive,
    PermanentStepError,
    UpstreamRejected,
    UpstreamUnavailable,
)

log = logging.getLogger(__name__)

MIN_WORDS, MAX_WORDS = 150, 250


def word_count(text: str) -> int:
    """Words in a template, a placeholder counting as one."""
    return len(PLACEHOLDER.sub("X", text).split())


class GeneratedTemplate(BaseModel):
    """The generator's answer; the validators make an out-of-range answer "malformed", so the
    provider asks once more before giving up."""

    template: str

    @field_validator("template")
    @classmethod
    def _check(cls, value: str) -> str:
        value = remove_machine_tells(value.strip())
        count = word_count(value)
        if not MIN_WORDS <= count <= MAX_WORDS:
            raise ValueError(f"template has {count} words; it needs {MIN_WORDS}-{MAX_WORDS}")
        if not PLACEHOLDER.search(value):
            raise ValueError("template has no {{placeholder}}")
        return value


SYSTEM = f"""You write cold-email templates for students contacting professors about research
positions. Use the student's resume and instructions. The template must be {MIN_WORDS} to
{MAX_WORDS} words, in the student's own voice, and use double-brace placeholders for everything
that depends on the recipient: {{{{professor_name}}}}, {{{{research_area}}}},
{{{{specific_paper}}}}, and others if useful. Include only facts from the resume. No em dashes,
no "delve", "leverage", "cutting-edge" or "I hope this email finds you well"."""

_OFFLINE_BODY = (
    "Dear {{{{professor_name}}}},\n\n"
    "My name is {name}, and I am writing to ask whether you might have room for a motivated "
    "student in your group. I have been reading about your work on {{{{research_area}}}}, and "
    "your paper {{{{specific_paper}}}} in particular made me want to learn more about the "
    "questions your lab is asking.\n\n"
    "A little about me: {summary}\n\n"
    "What draws me to your group is the chance to work on problems where careful experiments "
    "and clear thinking matter. I am comfortable reading papers closely, writing code to test "
    "ideas, and reporting what I find honestly, including when results are negative. I would "
    "be glad to start with whatever task would be most useful to you and your students, and I "
    "can commit regular hours during the coming term.\n\n"
    "I have attached my resume for your reference. If it would help, I would be happy to meet "
    "for a short call at a time that suits you, or to read any material you would suggest "
    "before we talk.\n\n"
    "Thank you for your time and consideration.\n\n"
    "Best regards,\n{name}"
)


def offline_template(resume: str) -> GeneratedTemplate:
    """A rule-based template from the resume's first line and first sentences."""
    lines = [line.strip() for line in resume.splitlines() if line.strip()]
    name = " ".join(lines[0].split()[:4]) if lines else "a student"
    # Linear: the fixed-width lookbehind fails at once except after punctuation, and the one
    # \s+ run that follows is the last element of the pattern, so it never gives back.
    sentences = re.split(r"(?<=[.!?])\s+", " ".join(lines[1:]))
    summary = " ".join(" ".join(sentences[:2]).split()[:40]) or "I am a student."
    text = _OFFLINE_BODY.format(name=name, summary=summary)
    words = text.split(" ")
    if word_count(text) > MAX_WORDS:
        text = " ".join(words[: len(words) - (word_count(text) - MAX_WORDS)])
    return GeneratedTemplate(template=text)


async def generate_template(
    clients: Clients,
    pdf_url: str,
    instructions: str,
    allowed_hosts: list[str],
    *,
    owner: str | None = None,
) -> str:
    """Download and read the resume, then ask the generator model for a template. ``owner``
    (the user) may have one resume being read at a time.

    Failures carry a short user-facing message (the template page shows ``detail`` verbatim);
    the provider's or parser's own text goes to the log only.
    """
    resume = await _read_resume(clients, pdf_url, allowed_hosts, owner)
    response = await _ask_generator(
        clients.generator_llm,
        LLMRequest(
            purpose="template_generator",
            system=SYSTEM,
            prompt=(
                f"<instructions>\n{instructions}\n</instructions>\n\n<resume>\n{resume}\n</resume>"
            ),
            output=GeneratedTemplate,
            offline=lambda: offline_template(resume),
            max_tokens=1500,
        ),
    )
    return response.value.template


MODEL_BUSY = "Template generation failed: the model is busy, try again in a minute."
MODEL_FAILED = "Template generation failed: the model did not write a usable template, try again."
PDF_UNREADABLE = "Template generation failed: could not read the PDF."


async def _ask_generator(
    llm: LLM, request: LLMRequest[GeneratedTemplate]
) -> LLMResponse[GeneratedTemplate]:
    try:
        return await llm.generate(request)
    except UpstreamUnavailable as exc:
        log.warning("template generation: the model is unavailable: %s", exc)
        raise UpstreamUnavailable(
            MODEL_BUSY, provider=exc.provider, retry_after=exc.retry_after or 60
        ) from exc
    except (UpstreamRejected, PermanentStepError) as exc:
        log.warning("template generation: the model failed: %s", exc)
        raise UpstreamRejected(MODEL_FAILED, provider=llm.model) from exc


async def _read_resume(
    clients: Clients, pdf_url: str, allowed_hosts: list[str], owner: str | None
) -> str:
    try:
        return await resume_text(
            clients.fetch_http, pdf_url, allowed_hosts, clients.pdf, owner=owner
        )
    except PdfTooExpensive:
        raise  # its message names only the limit, and it keeps its own status (422)
    except InvalidRequest as exc:
        log.info("template generation: resume %r not usable: %s", pdf_url[:200], exc)
        raise InvalidRequest(pdf_problem(exc.message)) from exc


def pdf_problem(reason: str) -> str:
    """The user-facing message for a resume that could not be used (the reason itself may hold
    addresses or library text, so only its kind is told)."""
    if "not allowed" in reason or "must be an http(s) URL" in reason:
        return "Template generation failed: the PDF's address is not allowed."
    if "non-public" in reason:
        return "Template generation failed: could not download the PDF (non-public address)."
    if "larger than" in reason:
        return f"Template generation failed: the PDF is larger than {MAX_PDF_BYTES >> 20} MB."
    if "scanned" in reason:
        return f"{PDF_UNREADABLE[:-1]} (no text found: is it a scanned image?)."
    if "not a PDF" in reason:
        return f"{PDF_UNREADABLE[:-1]} (the file is not a PDF)."
    return PDF_UNREADABLE
