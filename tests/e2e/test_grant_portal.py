"""The recipient's side of a grant, in the browser's pages: the status page shows the
grant and its reports; the report form, built from form A's indicators and form B's
categories, refuses what is missing in the recipient's language and sends the report;
a change to the agreement is asked for with its reason; an expired or forged proof opens
nothing."""

from __future__ import annotations

import re
import warnings
from datetime import UTC, datetime

from sqlmodel import select

from api.app import create_app
from engine.db import reading
from engine.services.grant_changes import list_amendments
from engine.services.grant_reports import list_reports
from engine.services.setup import Runtime
from engine.tables import AuditEvent, OutboxMessage
from tests.conftest import Clock, access_code
from tests.integration.test_grant_reports import BEN, active  # noqa: F401  (the fixture)
from tests.integration.test_opendata import decided  # noqa: F401  (the fixture)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

NOW = datetime(2019, 5, 20, 9, tzinfo=UTC)
REPORT = {
    "number": "1", "narrative": "Les sites sont recensés.", "progress-1-1": "32 sites",
    "progress-1-2": "projet en relecture", "progress-2-1": "pas encore", "spent-personnel": "9 000", "spent-travel": "",
}  # fmt: skip


def proof_of(page: str) -> str:
    found = re.search(r'name="proof" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def test_the_recipient_sends_a_report_from_the_status_page_in_french(active: Runtime) -> None:  # noqa: F811
    with TestClient(create_app(active.settings, now=Clock(NOW))) as http:
        status = http.post(
            "/status", data={"reference": BEN, "access_code": access_code(active, BEN), "lang": "fr"}
        ).text
        assert "Votre subvention" in status and "Envoyer le rapport d'avancement n°\u00a01" in status
        proof = proof_of(status)
        opened = http.post("/apply/grant/report", data={"reference": BEN, "proof": proof, "lang": "fr"})
        assert opened.status_code == 200 and "Progrès pour « Number of sites surveyed »" in opened.text.replace(
            "\u00a0", " "
        )
        carried = proof_of(opened.text)
        missing = http.post(
            "/apply/grant/report",
            data={"reference": BEN, "proof": carried, "lang": "fr", "action": "send", **REPORT, "progress-2-1": ""},
        )
        assert missing.status_code == 422 and "of whom women\u00a0»\u00a0: ce champ est obligatoire." in missing.text
        assert 'value="32 sites"' in missing.text  # what was typed is kept
        sent = http.post(
            "/apply/grant/report", data={"reference": BEN, "proof": carried, "lang": "fr", "action": "send", **REPORT}
        )
        assert sent.status_code == 200 and "Rapport reçu" in sent.text
        again = http.post(
            "/apply/grant/report", data={"reference": BEN, "proof": carried, "lang": "fr", "action": "send", **REPORT}
        )  # the page sent twice: nothing is filed under the next report
        assert again.status_code == 409 and "Déjà reçu" in again.text
        forged = http.post("/apply/grant/report", data={"reference": BEN, "proof": carried[:-3] + "abc", "lang": "fr"})
        assert forged.status_code == 404
    with reading(active.engine) as session:
        first = list_reports(session, BEN)[0]
        actors = session.exec(select(AuditEvent.actor).where(AuditEvent.action == "grant.report_submitted")).all()
        told = session.exec(select(OutboxMessage.subject).where(OutboxMessage.kind == "secretariat_notice")).all()
    assert first.state == "submitted" and actors == ["applicant"]
    assert [
        t for t in told if "progress report 1 received from the recipient, to review" in t
    ]  # the secretariat is told


def test_the_recipient_asks_for_an_extension_with_its_reason(active: Runtime) -> None:  # noqa: F811
    with TestClient(create_app(active.settings, now=Clock(NOW))) as http:
        status = http.post("/status", data={"reference": BEN, "access_code": access_code(active, BEN), "lang": "es"})
        opened = http.post("/apply/grant/amendment", data={"reference": BEN, "proof": proof_of(status.text)})
        carried = proof_of(opened.text)
        form = {"reference": BEN, "proof": carried, "lang": "es", "action": "send", "kind": "extension"}
        no_reason = http.post("/apply/grant/amendment", data={**form, "ends_on": "2021-05-02", "reason": ""})
        assert no_reason.status_code == 422 and "Motivo: este campo es obligatorio." in no_reason.text
        too_early = http.post("/apply/grant/amendment", data={**form, "ends_on": "2018-10-01", "reason": "Lluvias."})
        assert too_early.status_code == 422 and "el proyecto no puede terminar ese día" in too_early.text
        asked = http.post("/apply/grant/amendment", data={**form, "ends_on": "2021-05-02", "reason": "Lluvias."})
        assert asked.status_code == 200 and "Solicitud recibida" in asked.text
        twice = http.post("/apply/grant/amendment", data={**form, "ends_on": "2021-05-02", "reason": "Lluvias."})
        assert twice.status_code == 422 and "Ya se ha solicitado el mismo cambio" in twice.text
        bad_address = {**form, "kind": "contact", "contact_name": "Ana", "contact_email": "ana@", "reason": "Nueva."}
        refused = http.post("/apply/grant/amendment", data=bad_address)
        assert refused.status_code == 422 and "no es una dirección de correo electrónico" in refused.text
        budget = {f"budget-{c}": v for c, v in (("personnel", "35000"), ("contractual_services", "45000"),
                  ("meetings_training", "65000"), ("equipment_supplies", "25000"), ("monitoring_evaluation", "10000"),
                  ("project_management", "10000"))}  # fmt: skip
        more = http.post(
            "/apply/grant/amendment",
            data={**form, "kind": "reallocation", **budget, "budget-travel": "5000", "reason": "Vuelos."},
        )
        assert more.status_code == 422 and "El nuevo presupuesto mantiene el total de" in more.text
        moved = http.post(
            "/apply/grant/amendment", data={**form, "kind": "reallocation", **budget, "reason": "Equipos."}
        )
        assert moved.status_code == 200 and "Solicitud recibida" in moved.text
    with reading(active.engine) as session:
        amendments = list_amendments(session, BEN)
        told = session.exec(select(OutboxMessage.subject).where(OutboxMessage.kind == "secretariat_notice")).all()
    assert [t for t in told if "amendment 1 (extension) asked for by the recipient, to decide" in t]
    assert amendments[-1].kind == "reallocation" and amendments[-1].after["budget"]["equipment_supplies"] == "25000.00"
    assert [(a.kind, a.state) for a in amendments] == [("extension", "requested"), ("reallocation", "requested")]
