"""`POST /v1/Devices/{id}/Invoices/Submit`: an Xml device signs with its exported key; the appliance
verifies with the device's certificate, chains, stores and reports; tampered documents get 400."""

from __future__ import annotations

import base64
import re
import uuid
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from appliance.invoices import INITIAL_PIH
from appliance.invoices.model import SellerIdentity
from appliance.invoices.model_decode import decode_invoice_model
from appliance.invoices.render import render_invoice
from appliance.invoices.stamp import stamp_invoice
from appliance.zatca.token import decode_binary_security_token
from tests.fixtures.service import RunningService
from tests.integration.test_invoicing_api import invoicing_service, wait_until_delivered
from tests.integration.test_registration_e2e import register
from tests.support.invoice_models import model

__all__ = ["invoicing_service"]  # the module fixture, shared


class XmlDevice:
    def __init__(self, service: RunningService, emulator: Any) -> None:
        response = register(service, emulator, invoice_format="Xml")
        assert response.status_code == 200, response.text
        answer = response.json()
        self.device_id: str = answer["deviceId"]
        key = serialization.load_pem_private_key(answer["privateKey"].encode(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        self.key = key
        self.certificate_der = decode_binary_security_token(answer["csid"])
        self.csid: str = answer["csid"]
        self.secret: str = answer["secret"]
        row = service.registry_rows()[self.device_id]
        self.seller = SellerIdentity(vat=row["vat"], name=row["organization_name"])

    def sign(self, digest: bytes) -> bytes:
        return self.key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))

    def document(self, icv: int, pih: str, body: dict[str, Any], tamper: Any = None) -> bytes:
        unsigned = render_invoice(decode_invoice_model(body), self.seller, icv=icv, pih=pih)
        if tamper is not None:
            unsigned = tamper(unsigned)
        return stamp_invoice(unsigned, self.certificate_der, self.sign).xml


def submission(body: dict[str, Any], xml: bytes) -> dict[str, str]:
    return {
        "Uuid": body["Uuid"],
        "InvoiceNumber": body["InvoiceNumber"],
        "SignedXml": base64.b64encode(xml).decode(),
    }


def test_xml_device_submits_reports_and_tampering_is_refused(
    invoicing_service: RunningService, emulator: Any
) -> None:
    device = XmlDevice(invoicing_service, emulator)
    url = f"/v1/Devices/{device.device_id}/Invoices/Submit"
    with invoicing_service.client() as client:
        first_body = model()
        first_xml = device.document(1, INITIAL_PIH, first_body)
        accepted = client.post(url, json=submission(first_body, first_xml))
        assert accepted.status_code == 201, accepted.text
        first = accepted.json()
        assert first["icv"] == 1 and base64.b64decode(first["signedXml"]) == first_xml

        # Each tampering names its failed check; nothing joins the chain.
        body = model()
        good = device.document(2, first["invoiceHash"], body)
        profile = b"<cbc:ProfileID>reporting:1.0</cbc:ProfileID>"
        payable = re.search(rb'<cbc:PayableAmount currencyID="SAR">([^<]+)<', good)
        assert payable is not None
        tamperings = {
            "invoice-hash": good.replace(profile, profile + b" ", 1),
            "signed-properties": re.sub(
                rb"<xades:SigningTime>[^<]+<", b"<xades:SigningTime>2020-01-01T00:00:00<", good
            ),
            "qr": good.replace(payable.group(0), payable.group(0).replace(payable.group(1), b"1.00")),
        }
        for check, tampered in tamperings.items():
            assert tampered != good
            refused = client.post(url, json=submission(body, tampered))
            assert refused.status_code == 400, (check, refused.text)
            codes = {item["code"] for item in refused.json()["errorList"]}
            assert f"Invoice-Check-{check}" in codes, (check, codes)
        for bad in ("not base64!", base64.b64encode(b"<Invoice><unclosed>").decode()):
            refused = client.post(url, json={**submission(body, good), "SignedXml": bad})
            assert refused.status_code == 400 and refused.json()["errorList"][0]["field"] == "SignedXml"
        model_route = client.post(f"/v1/Devices/{device.device_id}/Invoices", json=model())
        assert model_route.status_code == 409 and "Xml" in model_route.json()["errorList"][0]["message"]

        # A document ZATCA rejects (another seller VAT than the certificate's: the stamp is valid,
        # ZATCA's permission check is not): Rejected with its messages; the chain continues.
        own_seller = device.seller
        device.seller = SellerIdentity(vat="300000000000003", name=own_seller.name)
        rejected_xml = device.document(2, first["invoiceHash"], body)
        device.seller = own_seller
        stored = client.post(url, json=submission(body, rejected_xml))
        assert stored.status_code == 201, stored.text
        rejected = stored.json()
        wait_until_delivered(client, device.device_id)
        rejected = client.get(f"/v1/Invoices/{rejected['invoiceId']}").json()
        assert rejected["status"] == "Rejected", rejected
        assert rejected["zatca"]["httpStatus"] == 400 and rejected["zatca"]["errorMessages"]

        # ICV/PIH that do not follow are accepted with the appliance's warning.
        third_body = model()
        skipped = device.document(5, INITIAL_PIH, third_body)
        answer = client.post(url, json=submission(third_body, skipped))
        assert answer.status_code == 201, answer.text
        warnings = {m["code"] for m in answer.json()["zatca"]["warningMessages"]}
        assert {"ICV-Not-Following", "PIH-Not-Following"} <= warnings

        # Then a document following the rejected one is reported.
        fourth_body = model()
        following = device.document(6, answer.json()["invoiceHash"], fourth_body)
        assert client.post(url, json=submission(fourth_body, following)).status_code == 201
        wait_until_delivered(client, device.device_id)
        statuses = client.get(f"/v1/Devices/{device.device_id}/Invoices").json()["items"]
        assert statuses[0]["status"] in ("Reported", "ReportedWithWarnings")
        assert statuses[-1]["status"] in ("Reported", "ReportedWithWarnings")

        held = httpx.get(f"{emulator.base_url}/emulator/invoices").json()
        assert any(entry["uuid"] == first_body["Uuid"] for entry in held)
        assert uuid.UUID(first["uuid"]) == uuid.UUID(first_body["Uuid"])


def test_uuid_sent_in_upper_case_names_the_same_document(
    invoicing_service: RunningService, emulator: Any
) -> None:
    device = XmlDevice(invoicing_service, emulator)
    url = f"/v1/Devices/{device.device_id}/Invoices/Submit"
    body = model()
    xml = device.document(1, INITIAL_PIH, body)  # cbc:UUID in lower case, as the model renders it
    with invoicing_service.client() as client:
        shouted = client.post(url, json={**submission(body, xml), "Uuid": body["Uuid"].upper()})
        assert shouted.status_code == 201, shouted.text
        assert shouted.json()["uuid"] == body["Uuid"]  # the document's own text is what is kept
        # A retry spelling the Uuid the other way is the same invoice, not a second one.
        again = client.post(url, json=submission(body, xml))
        assert again.status_code == 200, again.text
        assert again.json()["invoiceId"] == shouted.json()["invoiceId"]
        other = model()
        mismatched = client.post(url, json={**submission(body, xml), "Uuid": other["Uuid"].upper()})
        assert mismatched.status_code == 400 and "Uuid" in mismatched.text
