"""Safe on a shop network (issue 13): TLS, connection hygiene, probes, logs, caching, file modes.

Every service here is a real `zatca-appliance serve` process on 127.0.0.1 with its own SoftHSM
token; clients are httpx, curl and raw sockets. Flood connections come from other loopback
addresses (127.0.0.x), which Linux routes to `lo` like 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import re
import selectors
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from appliance.config import AppConfig, ServerSettings, TlsSettings
from tests.fixtures.emulator import start_emulator
from tests.fixtures.service import (
    START_TIMEOUT,
    RunningService,
    free_port,
    prepare_service,
    registration_body,
    write_config,
)
from tests.fixtures.softhsm import create_token

REQUEST_TIMEOUT = 5.0


# --- certificates: a shop CA issuing the appliance's and a POS terminal's certificate -----------


class ShopCa:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Shop CA")])
        self.name = name
        now = datetime.datetime.now(datetime.UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.certificate_file = directory / "ca.pem"
        self.certificate_file.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    def issue(self, name: str, *, server: bool) -> tuple[Path, Path, int]:
        """Certificate and key files for `name` (a server: SAN 127.0.0.1), and the serial number."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        serial = x509.random_serial_number()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
                ),
                critical=False,
            )
        certificate = builder.sign(self.key, hashes.SHA256())
        certificate_file, key_file = self.directory / f"{name}.pem", self.directory / f"{name}-key.pem"
        certificate_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        key_file.touch(mode=0o600)
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return certificate_file, key_file, serial


# --- services configured for these tests --------------------------------------------------------


class Service:
    """A RunningService reconfigured (TLS, ops port, limits) and started by this module."""

    def __init__(self, running: RunningService, ca: ShopCa | None = None) -> None:
        self.running = running
        self.ca = ca
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def settings(self) -> ServerSettings:
        return self.running.config.server

    @property
    def base_url(self) -> str:
        scheme = "https" if self.settings.tls else "http"
        return f"{scheme}://127.0.0.1:{self.settings.port}"

    @property
    def ops_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.ops_port}"

    def client(self, **kwargs: Any) -> httpx.Client:
        verify: Any = ssl.create_default_context(cafile=str(self.ca.certificate_file)) if self.ca else True
        return httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self.running.api_key}"},
            timeout=60,
            verify=kwargs.pop("verify", verify),
            **kwargs,
        )

    def log_text(self) -> str:
        return self.running.log_path.read_text(encoding="utf-8", errors="replace")

    def start(self, open_files: int | None = None) -> None:
        command = [sys.executable, "-m", "appliance.cli", "serve", "--config", str(self.running.config_path)]
        if open_files is not None:  # as systemd's default soft limit would leave it
            command = ["prlimit", f"--nofile={open_files}:{open_files}", "--", *command]
        with self.running.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        probe_url = f"{self.ops_url}/health/live" if self.settings.ops_port else None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log_text()
            try:
                if probe_url is not None:
                    if httpx.get(probe_url, timeout=1).status_code == 200:
                        return
                else:
                    with self.client() as client:
                        if client.get("/health/live", timeout=1).status_code == 200:
                            return
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError(f"service did not start: {self.log_text()}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=60)
            self.process = None

    def register(self, client: httpx.Client, emulator: Any) -> httpx.Response:
        return client.post("/v1/Devices/Register", json=registration_body(environment="Development"))


def configure(home: Path, emulator: Any, label: str, ca: ShopCa | None = None, **server: Any) -> Service:
    token = create_token(home / "softhsm", label)
    running = prepare_service(token, emulator, home / "service", read_timeout=30.0)
    settings = msgspec.structs.replace(running.config.server, **server)
    config = msgspec.structs.replace(
        running.config,
        server=settings,
        logging=msgspec.structs.replace(running.config.logging, format="text"),
    )
    write_config(running.config_path, config)
    running.config = config
    return Service(running, ca)


@pytest.fixture(scope="module")
def shop_ca(tmp_path_factory: pytest.TempPathFactory) -> ShopCa:
    return ShopCa(tmp_path_factory.mktemp("shop-ca"))


@pytest.fixture(scope="module")
def tls_service(
    emulator: Any, shop_ca: ShopCa, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """TLS, an ops port, text logs; its data directory existed before with loose modes."""
    home = tmp_path_factory.mktemp("tls-service")
    certificate, key, _ = shop_ca.issue("appliance", server=True)
    token = create_token(home / "softhsm", "zatca-tls")
    running = prepare_service(token, emulator, home / "service", read_timeout=30.0)
    data_dir = Path(running.config.storage.data_dir)
    data_dir.chmod(0o755)
    (data_dir / "left-over.txt").write_text("written by an older version")
    (data_dir / "left-over.txt").chmod(0o644)
    config = msgspec.structs.replace(
        running.config,
        server=msgspec.structs.replace(
            running.config.server,
            tls=TlsSettings(certificate_file=str(certificate), key_file=str(key)),
            ops_port=free_port(),
        ),
        logging=msgspec.structs.replace(running.config.logging, format="text"),
    )
    write_config(running.config_path, config)
    running.config = config
    service = Service(running, shop_ca)
    service.start()
    yield service
    service.stop()


# --- 1. TLS --------------------------------------------------------------------------------------


def test_registration_over_tls_with_a_client_that_trusts_the_shop_ca(
    tls_service: Service, emulator: Any
) -> None:
    with tls_service.client() as client:
        response = tls_service.register(client, emulator)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "Success"
    with (
        pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
        tls_service.client(verify=True) as untrusting,
    ):
        untrusting.get("/health/live")
    with pytest.raises(httpx.RemoteProtocolError), httpx.Client(timeout=5) as plain:
        plain.get(f"http://127.0.0.1:{tls_service.settings.port}/health/live")


def test_registration_with_curl_cacert(tls_service: Service, emulator: Any) -> None:
    assert tls_service.ca is not None
    body = registration_body(environment="Development")
    result = subprocess.run(
        [
            "curl", "-sS", "--fail-with-body", "--cacert", str(tls_service.ca.certificate_file),
            "-X", "POST", f"{tls_service.base_url}/v1/Devices/Register",
            "-H", f"Authorization: Bearer {tls_service.running.api_key}",
            "-H", "Content-Type: application/json",
            "--data-binary", msgspec.json.encode(body).decode(),
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    assert msgspec.json.decode(result.stdout)["status"] == "Success"


def test_tls_floor_is_1_2(tls_service: Service) -> None:
    context = ssl.create_default_context(
        cafile=str(tls_service.ca.certificate_file if tls_service.ca else "")
    )
    with warnings.catch_warnings():  # TLS 1.1 is deprecated: that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        context.maximum_version = ssl.TLSVersion.TLSv1_1
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # so that only the server can be the one refusing
    with (
        pytest.raises(ssl.SSLError),
        socket.create_connection(("127.0.0.1", tls_service.settings.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1"),
    ):
        pass
    # The same client capped at TLS 1.2 gets in: the refusal above was the version.
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with (
        socket.create_connection(("127.0.0.1", tls_service.settings.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.version() == "TLSv1.2"


def test_sighup_reloads_the_certificate(tls_service: Service) -> None:
    assert tls_service.ca is not None and tls_service.process is not None
    tls = tls_service.settings.tls
    assert tls is not None
    new_certificate, new_key, serial = tls_service.ca.issue("appliance-renewed", server=True)
    Path(tls.certificate_file).write_bytes(new_certificate.read_bytes())
    Path(tls.key_file).write_bytes(new_key.read_bytes())
    tls_service.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "TLS certificate and key reloaded" not in tls_service.log_text():
        assert time.monotonic() < deadline, tls_service.log_text()
        time.sleep(0.05)
    pem = ssl.get_server_certificate(("127.0.0.1", tls_service.settings.port), timeout=5)
    assert x509.load_pem_x509_certificate(pem.encode()).serial_number == serial
    assert tls_service.process.poll() is None


def test_mutual_tls_refuses_a_client_without_a_certificate(
    emulator: Any, shop_ca: ShopCa, tmp_path: Path
) -> None:
    certificate, key, _ = shop_ca.issue("appliance-mtls", server=True)
    pos_certificate, pos_key, _ = shop_ca.issue("pos-17", server=False)
    tls = TlsSettings(
        certificate_file=str(certificate), key_file=str(key), client_ca_file=str(shop_ca.certificate_file)
    )
    service = configure(tmp_path, emulator, "zatca-mtls", ca=shop_ca, tls=tls, ops_port=free_port())
    service.start()
    try:
        with pytest.raises(httpx.TransportError), service.client() as anonymous:
            anonymous.get("/health/live")
        context = ssl.create_default_context(cafile=str(shop_ca.certificate_file))
        context.load_cert_chain(pos_certificate, pos_key)
        with service.client(verify=context) as pos:
            response = service.register(pos, emulator)
        assert response.status_code == 200, response.text
    finally:
        service.stop()


def test_plaintext_on_a_non_loopback_address_is_refused_before_binding(tmp_path: Path) -> None:
    config = AppConfig(server=ServerSettings(host="0.0.0.0", port=free_port()))
    write_config(tmp_path / "config.yaml", config)
    result = subprocess.run(
        [sys.executable, "-m", "appliance.cli", "serve", "--config", str(tmp_path / "config.yaml")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "'0.0.0.0' is not a loopback address and server.tls is not set" in result.stderr
    assert "server.allow_plaintext" in result.stderr
    assert "listening" not in result.stdout


# --- 2. idle connections -------------------------------------------------------------------------


@pytest.fixture
def flood_service(emulator: Any, tmp_path: Path) -> Iterator[Service]:
    service = configure(
        tmp_path,
        emulator,
        "zatca-flood",
        request_timeout_seconds=REQUEST_TIMEOUT,
        max_connections=1000,
        max_connections_per_client=128,
    )
    # systemd's default soft limit: the service must fit its connections under it.
    service.start(open_files=1024)
    yield service
    service.stop()


class Flood:
    """Sockets that sent half a request header, watched for the service closing them."""

    def __init__(self, sources: list[str], port: int, count: int) -> None:
        self.selector = selectors.DefaultSelector()
        for index in range(count):
            sock = socket.socket()
            sock.bind((sources[index % len(sources)], 0))
            sock.connect(("127.0.0.1", port))
            sock.sendall(b"POST /v1/Devices/Register HTTP/1.1\r\nHost: appliance\r\nContent-Le")
            sock.setblocking(False)
            self.selector.register(sock, selectors.EVENT_READ)
        self.closed_at: list[float] = []

    @property
    def open_count(self) -> int:
        return len(self.selector.get_map() or {})

    def wait_until_open(self, count: int, limit: float) -> None:
        """Collect closes until only `count` sockets remain open (or `limit` seconds pass)."""
        deadline = time.monotonic() + limit
        while self.open_count > count and (remaining := deadline - time.monotonic()) > 0:
            for key, _ in self.selector.select(timeout=remaining):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    data = sock.recv(4096)
                except ConnectionError:
                    data = b""
                assert not data, data  # nothing is ever answered to half a header
                self.closed_at.append(time.monotonic())
                self.selector.unregister(sock)
                sock.close()

    def close(self) -> None:
        for key in list(self.selector.get_map().values()):
            self.selector.unregister(key.fileobj)
            key.fileobj.close()  # type: ignore[union-attr]
        self.selector.close()


@pytest.mark.parametrize(
    ("sources", "held"),
    [(["127.0.0.2"], 128), ([f"127.0.0.{host}" for host in range(10, 30)], 1024 - 128)],
    ids=["one-address-per-client-cap", "twenty-addresses-total-cap"],
)
def test_half_sent_headers_do_not_lock_out_a_pos(
    flood_service: Service, emulator: Any, sources: list[str], held: int
) -> None:
    with flood_service.client() as client:
        usual = statistics.median(_timed(lambda: flood_service.register(client, emulator)) for _ in range(3))
    log_size = flood_service.running.log_path.stat().st_size

    flood = Flood(sources, flood_service.settings.port, 2000)
    try:
        # The service refuses (one address over its cap) or evicts (over the total cap) the rest
        # at once and holds `held` connections, each until the request deadline.
        flood.wait_until_open(held, limit=REQUEST_TIMEOUT)
        accepted_all = time.monotonic()
        assert flood.open_count == held
        with flood_service.client() as pos:
            started = time.perf_counter()
            response = flood_service.register(pos, emulator)
            during = time.perf_counter() - started
        flood.wait_until_open(0, limit=REQUEST_TIMEOUT + 5)
        left_open = flood.open_count
    finally:
        flood.close()

    assert response.status_code == 200, response.text
    assert during <= usual + 1.0, (during, usual)
    assert left_open == 0
    assert max(flood.closed_at) - accepted_all <= REQUEST_TIMEOUT + 1.0
    assert flood_service.running.log_path.stat().st_size - log_size < 1_000_000
    assert "connections limited" in flood_service.log_text()
    assert "out of system resource" not in flood_service.log_text()


def _timed(call: Any) -> float:
    started = time.perf_counter()
    response = call()
    assert response.status_code == 200, response.text
    return time.perf_counter() - started


# --- 7. readiness probes and the ops listener ----------------------------------------------------


def _probe_count(service: Service) -> float:
    text = httpx.get(f"{service.ops_url}/metrics", timeout=10).text
    match = re.search(r'^zatca_appliance_hsm_operation_seconds_count\{operation="probe"\} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def test_a_flood_of_readiness_probes_costs_no_token_work(tls_service: Service) -> None:
    before = _probe_count(tls_service)

    async def flood() -> list[int]:
        # 48 connections: under the per-client cap (64) that guards the ops listener too.
        limits = httpx.Limits(max_connections=48)
        async with httpx.AsyncClient(base_url=tls_service.ops_url, timeout=30, limits=limits) as client:
            answers = await asyncio.gather(*(client.get("/health/ready") for _ in range(200)))
        return [answer.status_code for answer in answers]

    started = time.monotonic()
    statuses = asyncio.run(flood())
    elapsed = time.monotonic() - started
    assert statuses == [200] * 200
    # One probe per cache interval (2 s) at most, plus the one that was already due.
    assert _probe_count(tls_service) - before <= elapsed / 2.0 + 2


def test_metrics_and_readiness_answer_only_on_the_loopback_ops_port(tls_service: Service) -> None:
    assert httpx.get(f"{tls_service.ops_url}/metrics", timeout=10).status_code == 200
    assert httpx.get(f"{tls_service.ops_url}/health/ready", timeout=10).status_code == 200
    assert httpx.get(f"{tls_service.ops_url}/v1/Devices/Register", timeout=10).status_code == 404
    with tls_service.client() as client:
        assert client.get("/metrics").status_code == 404
        assert client.get("/health/ready").status_code == 404
        assert client.get("/health/live").status_code == 200


# --- 8, 9, 11, 12 -----------------------------------------------------------------------------


def test_text_log_escapes_control_characters_from_the_url(tls_service: Service) -> None:
    with tls_service.client() as client:
        client.get("/v1/Devices%0D%0AINFO%20forged%20line%1B%5B31m%00", headers={"X-Request-ID": "ctl-1"})
    deadline = time.monotonic() + 10
    while "[ctl-1]" not in (text := tls_service.log_text()):
        assert time.monotonic() < deadline, text
        time.sleep(0.05)
    line = next(line for line in text.splitlines() if "[ctl-1]" in line and "path=" in line)
    assert "\\r\\nINFO forged line\\x1b[31m\\x00" in line
    assert not any(line.startswith("INFO forged") for line in text.splitlines())
    assert "\x1b" not in text and "\x00" not in text


def test_an_abandoned_request_is_logged_as_a_disconnect_not_a_500(tls_service: Service) -> None:
    assert tls_service.ca is not None
    context = ssl.create_default_context(cafile=str(tls_service.ca.certificate_file))
    with (
        socket.create_connection(("127.0.0.1", tls_service.settings.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
    ):
        sock.sendall(
            b"POST /v1/Devices/Register HTTP/1.1\r\nHost: appliance\r\nX-Request-ID: gone-1\r\n"
            + f"Authorization: Bearer {tls_service.running.api_key}\r\n".encode()
            + b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"Device": {'
        )
    deadline = time.monotonic() + 10
    while not (lines := [line for line in tls_service.log_text().splitlines() if "[gone-1]" in line]):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert any("client disconnected" in line for line in lines), lines
    assert not any("status=500" in line for line in lines), lines


def test_every_api_answer_says_no_store(tls_service: Service, emulator: Any) -> None:
    with tls_service.client() as client:
        registered = tls_service.register(client, emulator)
        refused = client.post("/v1/Devices/Register", json={}, headers={"Authorization": "Bearer wrong"})
        missing = client.get("/v1/nothing-here")
    for response in (registered, refused, missing):
        assert response.headers["cache-control"] == "no-store", (response.status_code, response.headers)


def test_state_directories_are_forced_private_at_start(tls_service: Service, tmp_path: Path) -> None:
    data_dir = Path(tls_service.running.config.storage.data_dir)
    assert data_dir.stat().st_mode & 0o777 == 0o700
    for path in data_dir.rglob("*"):
        expected = 0o700 if path.is_dir() else 0o600
        assert path.stat().st_mode & 0o777 == expected, path

    emulator_dir = tmp_path / "emulator"
    emulator_dir.mkdir(mode=0o755)
    emulator_dir.chmod(0o755)
    first = start_emulator(emulator_dir)
    first.stop()
    for path in emulator_dir.iterdir():
        path.chmod(0o644)
    emulator_dir.chmod(0o755)
    second = start_emulator(emulator_dir)
    try:
        assert emulator_dir.stat().st_mode & 0o777 == 0o700
        state = list(emulator_dir.iterdir())
        assert any(path.name.endswith(".sqlite3") for path in state)
        for path in state:
            assert path.stat().st_mode & 0o777 == 0o600, path
    finally:
        second.stop()


def test_dev_tls_prints_a_curl_cacert_command_that_registers(tmp_path: Path) -> None:
    port, emulator_port = free_port(), free_port()
    log_path = tmp_path / "dev.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "appliance.cli", "dev", "--tls", "--data-dir", str(tmp_path / "dev"),
                "--port", str(port), "--emulator-port", str(emulator_port),
            ],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while "Register a device" not in (output := log_path.read_text(encoding="utf-8", errors="replace")):
            assert process.poll() is None, output
            assert time.monotonic() < deadline, output
            time.sleep(0.1)
        assert f"https://127.0.0.1:{port}" in output
        snippet = output[output.index("OTP=$(curl") :]
        snippet = snippet[: snippet.index('"InvoiceFormat": "Xml"}\'') + len('"InvoiceFormat": "Xml"}\'')]
        assert "curl --cacert " in snippet
        result = subprocess.run(
            ["bash", "-c", snippet], capture_output=True, text=True, timeout=60, check=True
        )
        assert msgspec.json.decode(result.stdout)["status"] == "Success", result.stdout
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
