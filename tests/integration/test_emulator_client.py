"""The appliance's ZatcaClient against the emulator over real HTTP.

Every error shape the emulator produces must reach the client as the right error with ZATCA's
code, and every injected fault must become the right error family within the client's timeout.
(Missing-OTP and 406 cannot be provoked through the client: it always sends an OTP and
Accept-Version; `test_emulator_compliance` covers them over raw HTTP.)
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from appliance.config import ZatcaSettings
from appliance.domain import Environment
from appliance.errors import ZatcaRejected, ZatcaTimeout, ZatcaUnavailable
from appliance.zatca import Credentials, CsidResponse, ZatcaClient
from tests.fixtures.emulator import (
    SANDBOX_OTP,
    TEST_VAT,
    EmulatorProcess,
    new_device_key,
    project_csr,
    public_key_der,
    variant_csr,
)

READ_TIMEOUT_SECONDS = 0.5


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(emulator: EmulatorProcess) -> AsyncIterator[ZatcaClient]:
    settings = ZatcaSettings(
        base_urls=emulator.base_urls(), connect_timeout=2.0, read_timeout=READ_TIMEOUT_SECONDS
    )
    async with ZatcaClient(settings) as zatca:
        yield zatca


def certified_key(csid: CsidResponse) -> bytes:
    return (
        x509.load_der_x509_certificate(csid.certificate_der)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


async def sandbox_compliance_csid(client: ZatcaClient, invoice_type: str = "1100") -> CsidResponse:
    csr = project_csr(Environment.DEVELOPMENT, new_device_key(), invoice_type=invoice_type)
    return await client.request_compliance_csid(Environment.DEVELOPMENT, csr, SANDBOX_OTP)


async def rejection(client: ZatcaClient, environment: Environment, csr_pem: str, otp: str) -> ZatcaRejected:
    with pytest.raises(ZatcaRejected) as rejected:
        await client.request_compliance_csid(environment, csr_pem, otp)
    return rejected.value


@pytest.mark.anyio
async def test_a_compliance_csid_certifies_the_csrs_key(
    client: ZatcaClient, emulator: EmulatorProcess
) -> None:
    key = new_device_key()
    otp = emulator.mint_otp("Simulation", TEST_VAT)
    csid = await client.request_compliance_csid(
        Environment.SIMULATION, project_csr(Environment.SIMULATION, key), otp
    )
    assert csid.disposition_message == "ISSUED"
    assert certified_key(csid) == public_key_der(key)


@pytest.mark.anyio
async def test_invalid_otp_reaches_the_client_with_its_code(
    client: ZatcaClient, emulator: EmulatorProcess
) -> None:
    rejected = await rejection(
        client, Environment.SIMULATION, project_csr(Environment.SIMULATION, new_device_key()), "000000"
    )
    assert rejected.status_code == 400
    assert [message.code for message in rejected.messages] == ["Invalid-OTP"]


@pytest.mark.anyio
async def test_invalid_csr_reaches_the_client_with_its_code(client: ZatcaClient) -> None:
    p256_csr = variant_csr(key=ec.generate_private_key(ec.SECP256R1())).public_bytes(
        serialization.Encoding.PEM
    )
    rejected = await rejection(client, Environment.DEVELOPMENT, p256_csr.decode(), SANDBOX_OTP)
    assert rejected.status_code == 400
    assert [message.code for message in rejected.messages] == ["Invalid-CSR"]


@pytest.mark.anyio
async def test_a_template_denial_reaches_the_client_as_not_compliant(
    client: ZatcaClient, emulator: EmulatorProcess
) -> None:
    otp = emulator.mint_otp("Production", TEST_VAT)
    rejected = await rejection(
        client, Environment.PRODUCTION, project_csr(Environment.SIMULATION, new_device_key()), otp
    )
    assert [message.code for message in rejected.messages] == ["NOT_COMPLIANT"]
    assert "Denied by Policy Module" in rejected.messages[0].message


@pytest.mark.anyio
async def test_an_invoice_type_refusal_reaches_the_client_as_not_compliant(client: ZatcaClient) -> None:
    csr = variant_csr(invoice_type="0000").public_bytes(serialization.Encoding.PEM).decode()
    rejected = await rejection(client, Environment.DEVELOPMENT, csr, SANDBOX_OTP)
    assert [message.code for message in rejected.messages] == ["NOT_COMPLIANT"]
    assert rejected.messages[0].message.startswith("Invoice type is")


@pytest.mark.anyio
async def test_missing_compliance_steps_reach_the_client_with_their_code(client: ZatcaClient) -> None:
    compliance = await sandbox_compliance_csid(client, invoice_type="0100")
    with pytest.raises(ZatcaRejected) as rejected:
        await client.request_production_csid(
            Environment.DEVELOPMENT, compliance.credentials, compliance.request_id
        )
    assert [message.code for message in rejected.value.messages] == ["Missing-ComplianceSteps"]
    assert "simplified-compliant" in rejected.value.messages[0].message


@pytest.mark.anyio
async def test_bad_credentials_reach_the_client_as_a_401_rejection(client: ZatcaClient) -> None:
    compliance = await sandbox_compliance_csid(client)
    forged = Credentials(compliance.binary_security_token, "A" * 43 + "=")
    with pytest.raises(ZatcaRejected) as rejected:
        await client.request_production_csid(Environment.DEVELOPMENT, forged, compliance.request_id)
    assert rejected.value.status_code == 401


@pytest.mark.anyio
async def test_a_ccsid_from_another_environment_reaches_the_client_as_invalid_current_ccsid(
    client: ZatcaClient, emulator: EmulatorProcess
) -> None:
    compliance = await sandbox_compliance_csid(client)
    emulator.pass_compliance_steps(compliance.request_id)
    with pytest.raises(ZatcaRejected) as rejected:
        await client.request_production_csid(
            Environment.SIMULATION, compliance.credentials, compliance.request_id
        )
    assert [message.code for message in rejected.value.messages] == ["Invalid-CurrentCCSID"]


@pytest.mark.anyio
async def test_onboarding_and_both_renewal_outcomes_through_the_client(
    client: ZatcaClient, emulator: EmulatorProcess
) -> None:
    compliance = await sandbox_compliance_csid(client)
    emulator.pass_compliance_steps(compliance.request_id)
    production = await client.request_production_csid(
        Environment.DEVELOPMENT, compliance.credentials, compliance.request_id
    )
    assert production.token_type is not None

    new_key = new_device_key()
    renewed = await client.renew_production_csid(
        Environment.DEVELOPMENT,
        production.credentials,
        project_csr(Environment.DEVELOPMENT, new_key),
        SANDBOX_OTP,
    )
    assert renewed.issued
    assert certified_key(renewed.csid) == public_key_der(new_key)

    emulator.set_behaviour(renewal_requires_compliance=True)
    again = await client.renew_production_csid(
        Environment.DEVELOPMENT,
        renewed.csid.credentials,
        project_csr(Environment.DEVELOPMENT, new_device_key()),
        SANDBOX_OTP,
    )
    assert not again.issued
    assert again.csid.disposition_message == "NOT_COMPLIANT"


@pytest.mark.anyio
async def test_an_injected_500_is_a_server_error(client: ZatcaClient, emulator: EmulatorProcess) -> None:
    emulator.inject_fault("error-500")
    with pytest.raises(ZatcaUnavailable) as unavailable:
        await sandbox_compliance_csid(client)
    assert (unavailable.value.reason, unavailable.value.status_code) == ("server-error", 500)
    assert not isinstance(unavailable.value, ZatcaTimeout)


@pytest.mark.anyio
async def test_malformed_json_is_a_bad_response(client: ZatcaClient, emulator: EmulatorProcess) -> None:
    emulator.inject_fault("malformed-json")
    with pytest.raises(ZatcaUnavailable) as unavailable:
        await sandbox_compliance_csid(client)
    assert unavailable.value.reason == "bad-response"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("fault", "seconds"), [("timeout", None), ("latency", READ_TIMEOUT_SECONDS * 4)], ids=["hang", "slow"]
)
async def test_no_answer_in_time_is_a_timeout_within_the_configured_bound(
    client: ZatcaClient, emulator: EmulatorProcess, fault: str, seconds: float | None
) -> None:
    emulator.inject_fault(fault, seconds=seconds)
    started = time.perf_counter()
    with pytest.raises(ZatcaTimeout):
        await sandbox_compliance_csid(client)
    elapsed = time.perf_counter() - started
    print(f"{fault}: ZatcaTimeout after {elapsed:.2f} s (read timeout {READ_TIMEOUT_SECONDS} s)")
    assert elapsed < READ_TIMEOUT_SECONDS + 1.5


@pytest.mark.anyio
async def test_latency_within_the_timeout_still_succeeds(
    client: ZatcaClient, emulator: EmulatorProcess
) -> None:
    emulator.inject_fault("latency", seconds=READ_TIMEOUT_SECONDS / 5)
    assert (await sandbox_compliance_csid(client)).disposition_message == "ISSUED"


@pytest.mark.anyio
async def test_a_certificate_for_the_wrong_key_passes_the_client_unnoticed(
    client: ZatcaClient, emulator: EmulatorProcess
) -> None:
    """The client cannot know the key; whoever holds it (the registration service) must compare."""
    emulator.inject_fault("wrong-key")
    key = new_device_key()
    csid = await client.request_compliance_csid(
        Environment.DEVELOPMENT, project_csr(Environment.DEVELOPMENT, key), SANDBOX_OTP
    )
    assert certified_key(csid) != public_key_der(key)
