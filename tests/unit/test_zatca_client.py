"""ZatcaClient against httpx.MockTransport: what goes on the wire, what comes back, what fails how."""

from __future__ import annotations

import base64
import datetime
import json
import logging
from collections.abc import Awaitable, Callable
from functools import cache

import anyio
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from appliance.config import ZatcaBaseUrls, ZatcaSettings
from appliance.domain import Environment
from appliance.errors import ConfigError, ZatcaRejected, ZatcaTimeout, ZatcaUnavailable
from appliance.zatca import CallObserver, Credentials, CsidResponse, RenewalOutcome, ZatcaClient

GATEWAY = "https://gw-fatoora.zatca.gov.sa/e-invoicing"
OTP = "987654"
SECRET = "Zm9vYmFyLXNlY3JldC1mb3ItdW5pdC10ZXN0cy0xMjM0NTY="
CURRENT_TOKEN = "Q1VSUkVOVC1UT0tFTi1mb3ItdW5pdC10ZXN0cw=="
CURRENT_SECRET = "Y3VycmVudC1zZWNyZXQtZm9yLXVuaXQtdGVzdHM="

Handler = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@cache
def issued_certificate_der() -> bytes:
    key = ec.generate_private_key(ec.SECP256K1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "TST-886431145-399999999900003")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "eInvoicing")]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.DER)


@cache
def issued_token() -> str:
    inner = base64.b64encode(issued_certificate_der())
    return base64.b64encode(inner).decode("ascii")


@cache
def csr_pem() -> str:
    key = ec.generate_private_key(ec.SECP256K1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "TST-886431145-399999999900003")]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode("ascii")


def csid_answer(request_id: int | str = 1234567890123, **overrides: object) -> bytes:
    answer: dict[str, object] = {
        "requestID": request_id,
        "dispositionMessage": "ISSUED",
        "binarySecurityToken": issued_token(),
        "secret": SECRET,
        "errors": None,
    }
    answer.update(overrides)
    return json.dumps(answer).encode()


class Recorder(httpx.MockTransport):
    """A MockTransport that answers with `handler`, keeps every request, and notes being closed."""

    def __init__(self, handler: Handler) -> None:
        self.requests: list[httpx.Request] = []
        self.closed = False
        self._answer = handler
        super().__init__(self._record_and_answer)

    async def _record_and_answer(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answered = self._answer(request)
        return answered if isinstance(answered, httpx.Response) else await answered

    async def aclose(self) -> None:
        self.closed = True

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]


def answer(status: int, content: bytes = b"", content_type: str = "application/json") -> Recorder:
    return Recorder(
        lambda _request: httpx.Response(status, content=content, headers={"Content-Type": content_type})
    )


def raising(error: type[httpx.TransportError]) -> Recorder:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error("simulated", request=request)

    return Recorder(handler)


def client_for(
    recorder: Recorder, settings: ZatcaSettings | None = None, observe: CallObserver | None = None
) -> ZatcaClient:
    return ZatcaClient(settings or ZatcaSettings(), transport=recorder, observe=observe)


def basic(token: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{token}:{secret}".encode()).decode()


CURRENT = Credentials(CURRENT_TOKEN, CURRENT_SECRET)
BASE_PATHS = {
    Environment.DEVELOPMENT: f"{GATEWAY}/developer-portal",
    Environment.SIMULATION: f"{GATEWAY}/simulation",
    Environment.PRODUCTION: f"{GATEWAY}/core",
}


# --- what goes on the wire -------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("environment", list(Environment))
async def test_compliance_csid_request_is_exactly_as_zatca_documents(environment: Environment) -> None:
    recorder = answer(200, csid_answer())
    async with client_for(recorder) as client:
        await client.request_compliance_csid(environment, csr_pem(), OTP)

    request = recorder.last
    assert request.method == "POST"
    assert str(request.url) == f"{BASE_PATHS[environment]}/compliance"
    assert request.headers["Accept-Version"] == "V2"
    assert request.headers["Accept-Language"] == "en"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["OTP"] == OTP
    assert "Authorization" not in request.headers
    assert json.loads(request.content) == {"csr": base64.b64encode(csr_pem().encode()).decode()}
    # The csr value is base64 of the PEM *text*: decoding it must give the PEM back, armour and all.
    assert base64.b64decode(json.loads(request.content)["csr"]).decode() == csr_pem()


@pytest.mark.anyio
@pytest.mark.parametrize("environment", list(Environment))
async def test_production_csid_request_uses_basic_auth_of_token_and_secret(environment: Environment) -> None:
    compliance = Credentials(issued_token(), SECRET)
    recorder = answer(200, csid_answer(30368))
    async with client_for(recorder) as client:
        await client.request_production_csid(environment, compliance, "1234567890123")

    request = recorder.last
    assert request.method == "POST"
    assert str(request.url) == f"{BASE_PATHS[environment]}/production/csids"
    assert request.headers["Accept-Version"] == "V2"
    assert request.headers["Content-Type"] == "application/json"
    assert "OTP" not in request.headers
    assert request.headers["Authorization"] == basic(issued_token(), SECRET)
    assert request.content == b'{"compliance_request_id":"1234567890123"}'


@pytest.mark.anyio
async def test_basic_auth_username_is_the_token_exactly_as_returned() -> None:
    """ZATCA's SEC section 5: username = the token string itself, not the certificate inside it."""
    recorder = answer(200, csid_answer())
    async with client_for(recorder) as client:
        await client.request_production_csid(Environment.DEVELOPMENT, CURRENT, "42")

    scheme, _, encoded = recorder.last.headers["Authorization"].partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(encoded).decode() == f"{CURRENT_TOKEN}:{CURRENT_SECRET}"


@pytest.mark.anyio
@pytest.mark.parametrize("environment", list(Environment))
async def test_renewal_request_sends_otp_current_credentials_and_new_csr(environment: Environment) -> None:
    recorder = answer(200, csid_answer(347))
    async with client_for(recorder) as client:
        await client.renew_production_csid(environment, CURRENT, csr_pem(), OTP)

    request = recorder.last
    assert request.method == "PATCH"
    assert str(request.url) == f"{BASE_PATHS[environment]}/production/csids"
    assert request.headers["Accept-Version"] == "V2"
    assert request.headers["OTP"] == OTP
    assert request.headers["Authorization"] == basic(CURRENT_TOKEN, CURRENT_SECRET)
    assert json.loads(request.content) == {"csr": base64.b64encode(csr_pem().encode()).decode()}


@pytest.mark.anyio
async def test_accept_language_follows_settings() -> None:
    recorder = answer(200, csid_answer())
    async with client_for(recorder, ZatcaSettings(accept_language="ar")) as client:
        await client.request_compliance_csid(Environment.SIMULATION, csr_pem(), OTP)

    assert recorder.last.headers["Accept-Language"] == "ar"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "base", ["http://127.0.0.1:8443/e-invoicing/simulation", "http://127.0.0.1:8443/e-invoicing/simulation/"]
)
async def test_paths_join_configured_base_urls_with_exactly_one_slash(base: str) -> None:
    settings = ZatcaSettings(base_urls=ZatcaBaseUrls(simulation=base))
    recorder = answer(200, csid_answer())
    async with client_for(recorder, settings) as client:
        await client.request_compliance_csid(Environment.SIMULATION, csr_pem(), OTP)
        await client.request_production_csid(Environment.SIMULATION, CURRENT, "1")

    assert [str(request.url) for request in recorder.requests] == [
        "http://127.0.0.1:8443/e-invoicing/simulation/compliance",
        "http://127.0.0.1:8443/e-invoicing/simulation/production/csids",
    ]


@pytest.mark.parametrize(
    "bad_url", ["gw-fatoora.zatca.gov.sa/e-invoicing/core", "ftp://host/x", "https://host/x?y=1"]
)
def test_unusable_base_url_is_a_configuration_error_naming_the_setting(bad_url: str) -> None:
    settings = ZatcaSettings(base_urls=ZatcaBaseUrls(production=bad_url))

    with pytest.raises(ConfigError, match=r"zatca\.base_urls\.production"):
        ZatcaClient(settings, transport=answer(200))


# --- refused before sending ------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    "otp",
    [
        pytest.param("123345\r\nX-Injected: yes", id="crlf"),
        pytest.param("123345\n", id="trailing-newline"),
        pytest.param("123 345", id="space"),
        pytest.param("12\x003345", id="nul"),
        pytest.param("١٢٣٣٤٥", id="arabic-indic-digits"),
        pytest.param("", id="empty"),
    ],
)
async def test_otp_that_could_inject_headers_is_refused_before_sending(otp: str) -> None:
    recorder = answer(200, csid_answer())
    async with client_for(recorder) as client:
        with pytest.raises(ValueError, match="OTP") as compliance_error:
            await client.request_compliance_csid(Environment.DEVELOPMENT, csr_pem(), otp)
        with pytest.raises(ValueError, match="OTP"):
            await client.renew_production_csid(Environment.DEVELOPMENT, CURRENT, csr_pem(), otp)

    assert recorder.requests == []
    if otp:
        assert otp not in str(compliance_error.value)


@pytest.mark.anyio
async def test_csr_that_is_not_pem_is_refused_before_sending() -> None:
    der_as_text = base64.b64encode(b"\x30\x82 not a pem").decode()
    recorder = answer(200, csid_answer())
    async with client_for(recorder) as client:
        with pytest.raises(ValueError, match="PEM"):
            await client.request_compliance_csid(Environment.DEVELOPMENT, der_as_text, OTP)

    assert recorder.requests == []


@pytest.mark.anyio
@pytest.mark.parametrize("credentials", [Credentials("", SECRET), Credentials(CURRENT_TOKEN, "")])
async def test_incomplete_credentials_are_refused_before_sending(credentials: Credentials) -> None:
    recorder = answer(200, csid_answer())
    async with client_for(recorder) as client:
        with pytest.raises(ValueError, match="credentials"):
            await client.request_production_csid(Environment.DEVELOPMENT, credentials, "1")

    assert recorder.requests == []


# --- what comes back -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_compliance_csid_answer_becomes_a_csid_response() -> None:
    recorder = answer(200, csid_answer(1737546933297))
    async with client_for(recorder) as client:
        csid = await client.request_compliance_csid(Environment.DEVELOPMENT, csr_pem(), OTP)

    assert csid.request_id == "1737546933297"
    assert csid.disposition_message == "ISSUED"
    assert csid.binary_security_token == issued_token()
    assert csid.secret == SECRET
    assert csid.token_type is None
    assert csid.certificate_der == issued_certificate_der()
    assert csid.credentials == Credentials(issued_token(), SECRET)


@pytest.mark.anyio
async def test_string_request_id_is_kept_as_sent() -> None:
    recorder = answer(200, csid_answer("1234567890123"))
    async with client_for(recorder) as client:
        csid = await client.request_compliance_csid(Environment.DEVELOPMENT, csr_pem(), OTP)

    assert csid.request_id == "1234567890123"


@pytest.mark.anyio
async def test_renewal_200_is_issued_and_428_is_a_normal_not_issued_outcome() -> None:
    async with client_for(answer(200, csid_answer(347))) as client:
        issued = await client.renew_production_csid(Environment.PRODUCTION, CURRENT, csr_pem(), OTP)
    renewed_compliance = csid_answer(1234567890123, dispositionMessage="NOT_COMPLIANT", tokenType=None)
    async with client_for(answer(428, renewed_compliance)) as client:
        not_issued = await client.renew_production_csid(Environment.PRODUCTION, CURRENT, csr_pem(), OTP)

    assert issued.issued is True
    assert issued.csid.request_id == "347"
    assert not_issued.issued is False
    assert not_issued.csid.request_id == "1234567890123"
    assert not_issued.csid.disposition_message == "NOT_COMPLIANT"
    assert not_issued.csid.credentials == Credentials(issued_token(), SECRET)
    assert not_issued.csid.certificate_der == issued_certificate_der()


@pytest.mark.anyio
@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(
            b'{"requestID":-1,"dispositionMessage":"NOT_COMPLIANT","binarySecurityToken":"","secret":""}',
            id="empty-token",
        ),
        pytest.param(
            b'{"requestID":1,"binarySecurityToken":null,"secret":null,"errors":null}', id="null-token"
        ),
        pytest.param(b"<html><title>428</title></html>", id="html"),
    ],
)
async def test_renewal_428_without_usable_credentials_is_a_bad_response(body: bytes) -> None:
    async with client_for(answer(428, body)) as client:
        with pytest.raises(ZatcaUnavailable) as caught:
            await client.renew_production_csid(Environment.PRODUCTION, CURRENT, csr_pem(), OTP)

    assert caught.value.reason == "bad-response"
    assert caught.value.status_code == 428
    assert caught.value.endpoint == "production-csid-renewal"


def _token_of(inner: bytes) -> str:
    return base64.b64encode(base64.b64encode(inner)).decode()


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "detail"),
    [
        pytest.param(b"not json at all", "not a CSID answer", id="not-json"),
        pytest.param(b"<html><body>Welcome</body></html>", "not a CSID answer", id="html"),
        pytest.param(b"", "not a CSID answer", id="empty"),
        pytest.param(b"[1, 2]", "not a CSID answer", id="json-array"),
        pytest.param(b'{"requestID": 1, "secret": "s"}', "binarySecurityToken", id="no-token"),
        pytest.param(
            json.dumps({"requestID": 1, "binarySecurityToken": issued_token()}).encode(),
            "secret",
            id="no-secret",
        ),
        pytest.param(
            json.dumps({"binarySecurityToken": issued_token(), "secret": "s"}).encode(),
            "requestID",
            id="no-request-id",
        ),
        pytest.param(
            json.dumps({"requestID": 1, "binarySecurityToken": 17, "secret": "s"}).encode(),
            "not a CSID answer",
            id="token-not-text",
        ),
        pytest.param(
            json.dumps(
                {"requestID": 1, "binarySecurityToken": _token_of(b"no cert"), "secret": "s"}
            ).encode(),
            "certificate",
            id="token-without-certificate",
        ),
        pytest.param(
            json.dumps({"requestID": 1, "binarySecurityToken": "%%%", "secret": "s"}).encode(),
            "base64",
            id="token-not-base64",
        ),
    ],
)
async def test_200_that_cannot_be_used_is_a_bad_response(body: bytes, detail: str) -> None:
    async with client_for(answer(200, body)) as client:
        with pytest.raises(ZatcaUnavailable) as caught:
            await client.request_compliance_csid(Environment.DEVELOPMENT, csr_pem(), OTP)

    error = caught.value
    assert type(error) is ZatcaUnavailable
    assert error.reason == "bad-response"
    assert error.status_code == 200
    assert error.endpoint == "compliance-csid"
    assert detail in error.detail
    assert error.__cause__ is not None or "lacks" in error.detail


# --- when ZATCA cannot be reached ------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    "httpx_timeout", [httpx.ReadTimeout, httpx.ConnectTimeout, httpx.WriteTimeout, httpx.PoolTimeout]
)
async def test_httpx_timeouts_become_zatca_timeout(httpx_timeout: type[httpx.TimeoutException]) -> None:
    async with client_for(raising(httpx_timeout)) as client:
        with pytest.raises(ZatcaTimeout) as caught:
            await client.request_compliance_csid(Environment.DEVELOPMENT, csr_pem(), OTP)

    assert caught.value.reason == "timeout"
    assert caught.value.endpoint == "compliance-csid"
    assert isinstance(caught.value.__cause__, httpx_timeout)


@pytest.mark.anyio
@pytest.mark.parametrize("failure", [httpx.ConnectError, httpx.ReadError, httpx.WriteError, httpx.ProxyError])
async def test_connection_failures_become_unavailable_connect(failure: type[httpx.TransportError]) -> None:
    async with client_for(raising(failure)) as client:
        with pytest.raises(ZatcaUnavailable) as caught:
            await client.request_production_csid(Environment.SIMULATION, CURRENT, "1")

    error = caught.value
    assert type(error) is ZatcaUnavailable
    assert error.reason == "connect"
    assert error.status_code is None
    assert error.endpoint == "production-csid"
    assert isinstance(error.__cause__, failure)


@pytest.mark.anyio
async def test_broken_http_exchange_is_a_bad_response() -> None:
    async with client_for(raising(httpx.RemoteProtocolError)) as client:
        with pytest.raises(ZatcaUnavailable) as caught:
            await client.renew_production_csid(Environment.SIMULATION, CURRENT, csr_pem(), OTP)

    assert caught.value.reason == "bad-response"
    assert isinstance(caught.value.__cause__, httpx.RemoteProtocolError)


@pytest.mark.anyio
async def test_configured_timeout_bounds_a_call_that_never_answers() -> None:
    never = anyio.Event()

    async def hang(_request: httpx.Request) -> httpx.Response:
        await never.wait()
        raise AssertionError("unreachable: nobody sets the event")

    observed: list[tuple[str, str, float]] = []
    settings = ZatcaSettings(connect_timeout=0.05, read_timeout=0.1, write_timeout=0.05, pool_timeout=0.05)
    recorder = Recorder(hang)
    async with ZatcaClient(
        settings, transport=recorder, observe=lambda *call: observed.append(call)
    ) as client:
        # The guard turns a client that ignores its timeout into a failure instead of a hung suite.
        with anyio.fail_after(10), pytest.raises(ZatcaTimeout) as caught:
            await client.request_compliance_csid(Environment.DEVELOPMENT, csr_pem(), OTP)

    assert caught.value.reason == "timeout"
    assert len(recorder.requests) == 1
    [(endpoint, status, seconds)] = observed
    assert (endpoint, status) == ("compliance-csid", "timeout")
    assert 0.2 <= seconds < 5


# --- observation and lifetime ----------------------------------------------------------------


@pytest.mark.anyio
async def test_every_call_is_observed_with_endpoint_status_and_latency() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "PATCH":
            return httpx.Response(428, content=csid_answer(dispositionMessage="NOT_COMPLIANT"))
        if request.url.path.endswith("/compliance"):
            return httpx.Response(200, content=csid_answer())
        return httpx.Response(400, json={"code": "Missing-ComplianceSteps", "message": "not done"})

    observed: list[tuple[str, str, float]] = []
    async with ZatcaClient(
        ZatcaSettings(), transport=Recorder(handler), observe=lambda *c: observed.append(c)
    ) as client:
        await client.request_compliance_csid(Environment.DEVELOPMENT, csr_pem(), OTP)
        with pytest.raises(ZatcaRejected):
            await client.request_production_csid(Environment.DEVELOPMENT, CURRENT, "1")
        await client.renew_production_csid(Environment.DEVELOPMENT, CURRENT, csr_pem(), OTP)
    async with client_for(raising(httpx.ConnectError), observe=lambda *c: observed.append(c)) as client:
        with pytest.raises(ZatcaUnavailable):
            await client.request_compliance_csid(Environment.DEVELOPMENT, csr_pem(), OTP)

    assert [(endpoint, status) for endpoint, status, _ in observed] == [
        ("compliance-csid", "200"),
        ("production-csid", "400"),
        ("production-csid-renewal", "428"),
        ("compliance-csid", "connect"),
    ]
    assert all(seconds >= 0 for _, _, seconds in observed)


@pytest.mark.anyio
async def test_closing_the_client_closes_its_transport() -> None:
    recorder = answer(200, csid_answer())
    async with client_for(recorder) as client:
        await client.request_compliance_csid(Environment.DEVELOPMENT, csr_pem(), OTP)
        assert recorder.closed is False

    assert recorder.closed is True


# --- secrets stay out of logs and reprs ------------------------------------------------------


def secret_strings() -> list[str]:
    csr_value = base64.b64encode(csr_pem().encode()).decode()
    csr_body_line = csr_pem().splitlines()[1]
    authorization = basic(CURRENT_TOKEN, CURRENT_SECRET)
    return [
        OTP,
        SECRET,
        issued_token(),
        CURRENT_TOKEN,
        CURRENT_SECRET,
        csr_value,
        csr_body_line,
        authorization,
        authorization.removeprefix("Basic "),
    ]


@pytest.mark.anyio
async def test_logs_never_carry_otp_secret_token_or_csr(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    async with client_for(answer(200, csid_answer())) as client:
        await client.request_compliance_csid(Environment.DEVELOPMENT, csr_pem(), OTP)
        await client.request_production_csid(Environment.SIMULATION, CURRENT, "1234567890123")
        await client.renew_production_csid(Environment.PRODUCTION, CURRENT, csr_pem(), OTP)
    async with client_for(answer(428, csid_answer(dispositionMessage="NOT_COMPLIANT"))) as client:
        await client.renew_production_csid(Environment.PRODUCTION, CURRENT, csr_pem(), OTP)
    rejection = json.dumps({"errors": [{"code": "Invalid-OTP", "message": "The provided OTP is invalid"}]})
    async with client_for(answer(400, rejection.encode())) as client:
        with pytest.raises(ZatcaRejected):
            await client.request_compliance_csid(Environment.DEVELOPMENT, csr_pem(), OTP)
    async with client_for(answer(500, b'{"code":"Invalid-Request","message":"System failed"}')) as client:
        with pytest.raises(ZatcaUnavailable):
            await client.renew_production_csid(Environment.PRODUCTION, CURRENT, csr_pem(), OTP)
    async with client_for(raising(httpx.ReadTimeout)) as client:
        with pytest.raises(ZatcaTimeout):
            await client.request_production_csid(Environment.SIMULATION, CURRENT, "1")
    async with client_for(raising(httpx.ConnectError)) as client:
        with pytest.raises(ZatcaUnavailable):
            await client.request_compliance_csid(Environment.DEVELOPMENT, csr_pem(), OTP)

    ours = [record for record in caplog.records if record.name == "appliance.zatca"]
    # The logs are there and useful: endpoint, environment and status of every call.
    assert [(r.zatca_endpoint, r.zatca_environment, r.zatca_status) for r in ours] == [  # type: ignore[attr-defined]
        ("compliance-csid", "Development", "200"),
        ("production-csid", "Simulation", "200"),
        ("production-csid-renewal", "Production", "200"),
        ("production-csid-renewal", "Production", "428"),
        ("compliance-csid", "Development", "400"),
        ("production-csid-renewal", "Production", "500"),
        ("production-csid", "Simulation", "timeout"),
        ("compliance-csid", "Development", "connect"),
    ]
    everything_logged = caplog.text + "\n".join(repr(vars(record)) for record in caplog.records)
    for secret in secret_strings():
        assert secret not in everything_logged


def test_reprs_hide_token_and_secret() -> None:
    credentials = Credentials(CURRENT_TOKEN, CURRENT_SECRET)
    csid = CsidResponse(
        request_id="1234567890123",
        disposition_message="ISSUED",
        binary_security_token=issued_token(),
        secret=SECRET,
        token_type=None,
        certificate_der=issued_certificate_der(),
    )
    outcome = RenewalOutcome(issued=False, csid=csid)

    shown = [
        repr(credentials),
        str(credentials),
        f"{credentials}",
        repr(csid),
        str(csid),
        repr(outcome),
        repr(csid.credentials),
        repr(credentials.__rich_repr__()),
        repr(csid.__rich_repr__()),
        repr([credentials, csid]),
    ]
    for text in shown:
        for secret in (CURRENT_TOKEN, CURRENT_SECRET, issued_token(), SECRET):
            assert secret not in text
    # Still useful for debugging: the request id and disposition are visible.
    assert "1234567890123" in repr(outcome)
    assert "ISSUED" in repr(csid)
