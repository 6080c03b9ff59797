"""Who may invoice what, and which documents Submit refuses.

- an inactive device (retired, or failed at registration) gets 409 on invoicing, an unknown one 404,
  also with a body that is wrong too (the device is named first), and also once the device has
  invoiced; so does one holding only a compliance CSID (`zatca.onboarding: compliance`);
- an API key scoped to VAT A cannot invoice, read or list the invoices of a VAT-B device (404);
  a key without the `invoice` role gets 403 (a `read` key still reads);
- Submit refuses, with 400 naming the failed check, a document stamped with another certificate
  and one whose signature is over the hex text of the hash instead of the hash.
"""

from __future__ import annotations

import base64
import uuid
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from appliance.invoices import INITIAL_PIH
from appliance.invoices.model_decode import decode_invoice_model
from appliance.invoices.qr import decode_qr, encode_tlv
from appliance.invoices.render import render_invoice
from appliance.invoices.stamp import stamp_invoice
from tests.fixtures.service import RunningService, cli, prepare_service
from tests.fixtures.softhsm import create_token
from tests.integration.test_invoicing_api import invoicing_service, new_model_device
from tests.integration.test_invoicing_submit import XmlDevice, submission
from tests.integration.test_registration_e2e import register
from tests.support.invoice_models import model

__all__ = ["invoicing_service"]  # the module fixture, shared

OTHER_VAT = "300000000000003"


def api_key(service: RunningService, name: str, *options: str) -> str:
    created = cli("apikey", "create", name, "--config", str(service.config_path), *options)
    return created.stdout.strip()


def refused_codes(response: Any) -> set[str]:
    return {item["code"] for item in response.json()["errorList"]}


def test_inactive_and_unknown_devices(invoicing_service: RunningService, emulator: Any) -> None:
    retired = new_model_device(invoicing_service, emulator)
    serial = f"SN-{uuid.uuid4().hex[:12]}"
    failed = register(invoicing_service, emulator, invoice_format="Model", otp="000000", egs_serial=serial)
    assert failed.status_code == 400, failed.text
    (failed_row,) = [r for r in invoicing_service.registry_rows().values() if r["egs_serial"] == serial]
    assert failed_row["status"] == "failed"
    with invoicing_service.client() as client:
        # It invoiced before its retirement: the service has seen it active.
        assert client.post(f"/v1/Devices/{retired}/Invoices", json=model()).status_code == 201
        assert client.delete(f"/v1/Devices/{retired}").status_code == 200
        for device_id, state in ((retired, "retired"), (failed_row["device_id"], "failed")):
            # What is wrong with the device is answered before what is wrong with the body.
            for body in ({**model(), "Lines": []}, model()):
                refused = client.post(f"/v1/Devices/{device_id}/Invoices", json=body)
                assert refused.status_code == 409, refused.text
                assert state in refused.json()["errorList"][0]["message"]
        for body in (model(), {**model(), "Lines": []}):
            unknown = client.post(f"/v1/Devices/{uuid.uuid4()}/Invoices", json=body)
            assert unknown.status_code == 404, unknown.text
        assert client.get(f"/v1/Devices/{retired}/Invoices").json()["total"] == 1


def test_a_device_with_only_a_compliance_csid_does_not_invoice(emulator: Any, tmp_path: Path) -> None:
    # Its own token: a second service on another's token would reconcile its keys away.
    token = create_token(tmp_path / "token", "zatca-invoicing-compliance")
    compliance_only = prepare_service(token, emulator, tmp_path / "svc", onboarding="compliance")
    compliance_only.start()
    try:
        model_device = register(compliance_only, emulator, invoice_format="Model")
        xml_device = XmlDevice(compliance_only, emulator)
        assert model_device.status_code == 200, model_device.text
        model_id = model_device.json()["deviceId"]
        with compliance_only.client() as client:
            body = model()
            refused = [
                client.post(f"/v1/Devices/{model_id}/Invoices", json=model()),
                client.post(
                    f"/v1/Devices/{xml_device.device_id}/Invoices/Submit",
                    json=submission(body, xml_device.document(1, INITIAL_PIH, body)),
                ),
            ]
            for response in refused:
                assert response.status_code == 409, response.text
                message = response.json()["errorList"][0]["message"]
                assert "compliance CSID" in message and "production CSID" in message
            for device_id in (model_id, xml_device.device_id):
                assert client.get(f"/v1/Devices/{device_id}/Invoices").json()["total"] == 0
    finally:
        compliance_only.stop()


def test_scoped_and_role_limited_keys(invoicing_service: RunningService, emulator: Any) -> None:
    device_a = new_model_device(invoicing_service, emulator)
    response = register(invoicing_service, emulator, invoice_format="Model", vat=OTHER_VAT)
    assert response.status_code == 200, response.text
    device_b = response.json()["deviceId"]
    with invoicing_service.client() as admin:
        invoice_b = admin.post(f"/v1/Devices/{device_b}/Invoices", json=model())
        assert invoice_b.status_code == 201, invoice_b.text
    invoice_b_id = invoice_b.json()["invoiceId"]

    scoped = api_key(invoicing_service, f"vat-a-{uuid.uuid4().hex[:6]}", "--vat", "399999999900003")
    with invoicing_service.client(scoped) as client:
        assert client.post(f"/v1/Devices/{device_a}/Invoices", json=model()).status_code == 201
        for response in (
            client.post(f"/v1/Devices/{device_b}/Invoices", json={**model(), "Lines": []}),
            client.post(f"/v1/Devices/{device_b}/Invoices", json=model()),
            client.get(f"/v1/Invoices/{invoice_b_id}"),
            client.get(f"/v1/Invoices/{invoice_b_id}", headers={"Accept": "application/xml"}),
            client.get(f"/v1/Devices/{device_b}/Invoices"),
            client.put(f"/v1/Devices/{device_b}/Seller", json=model()["Seller"]),
        ):
            assert response.status_code == 404, (response.request.url, response.text)
            assert device_b not in response.text or "no device" in response.text

    reader = api_key(invoicing_service, f"read-{uuid.uuid4().hex[:6]}", "--role", "read")
    with invoicing_service.client(reader) as client:
        refused = client.post(f"/v1/Devices/{device_a}/Invoices", json=model())
        assert refused.status_code == 403 and "invoice" in refused.json()["errorList"][0]["message"]
        assert client.get(f"/v1/Invoices/{invoice_b_id}").status_code == 200
    registrar = api_key(invoicing_service, f"register-{uuid.uuid4().hex[:6]}", "--role", "register")
    with invoicing_service.client(registrar) as client:
        assert client.post(f"/v1/Devices/{device_a}/Invoices", json=model()).status_code == 403
        assert client.get(f"/v1/Devices/{device_a}/Invoices").status_code == 403
    with invoicing_service.client() as admin:
        # Nothing the refused requests sent joined device B's chain.
        assert admin.get(f"/v1/Devices/{device_b}/Invoices").json()["total"] == 1


def test_submit_refuses_another_certificate_and_a_signature_over_hex(
    invoicing_service: RunningService, emulator: Any
) -> None:
    device = XmlDevice(invoicing_service, emulator)
    other = XmlDevice(invoicing_service, emulator)
    url = f"/v1/Devices/{device.device_id}/Invoices/Submit"
    with invoicing_service.client() as client:
        # Stamped (validly) by another device with its own certificate and key.
        body = model()
        unsigned = render_invoice(decode_invoice_model(body), device.seller, icv=1, pih=INITIAL_PIH)
        foreign = stamp_invoice(unsigned, other.certificate_der, other.sign).xml
        refused = client.post(url, json=submission(body, foreign))
        assert refused.status_code == 400, refused.text
        assert "Invoice-Check-certificate" in refused_codes(refused)
        assert all(item["field"] == "SignedXml" for item in refused.json()["errorList"])

        # The device's own key, but signing the hex text of the hash (a known integration bug).
        result = stamp_invoice(unsigned, device.certificate_der, device.sign)
        raw_hash = base64.b64decode(result.invoice_hash)
        hex_signed = base64.b64encode(device.key.sign(raw_hash.hex().encode(), ec.ECDSA(hashes.SHA256())))
        tags = decode_qr(result.qr)
        tampered = result.xml.replace(result.signature_value.encode(), hex_signed).replace(
            result.qr.encode(), encode_tlv({**tags, 7: hex_signed}).encode()
        )
        refused = client.post(url, json=submission(body, tampered))
        assert refused.status_code == 400, refused.text
        assert refused_codes(refused) == {"Invoice-Check-signature"}
        assert "signature" in refused.json()["errorList"][0]["message"]

        # Neither joined the chain: the correctly signed document is still ICV 1.
        accepted = client.post(url, json=submission(body, result.xml))
        assert accepted.status_code == 201, accepted.text
        assert accepted.json()["icv"] == 1
        assert client.get(f"/v1/Devices/{device.device_id}/Invoices").json()["total"] == 1
