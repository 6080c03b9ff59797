"""ZATCA's published sample answers parse, and their certificates are what the samples say.

The responses are copied from /work/shared/docs/zatca-samples.json (public Swagger and Odoo
examples); the subjects and issuers are the ones openssl printed for them there.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from cryptography import x509

from appliance.config import ZatcaSettings
from appliance.domain import Environment
from appliance.zatca import Credentials, ZatcaClient

SANDBOX = "https://gw-fatoora.zatca.gov.sa/e-invoicing/developer-portal"
SUBJECT_CSR_ORDER = (
    "C=SA, OU=Riyadh Branch, O=Maximum Speed Tech Supply LTD, CN=TST-886431145-399999999900003"
)
SUBJECT_CA_ORDER = "C=SA, O=Maximum Speed Tech Supply LTD, OU=Riyadh Branch, CN=TST-886431145-399999999900003"

SWAGGER_CSR_REQUEST_VALUE = (
    "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0KTUlJQ0ZUQ0NBYndDQVFBd2RURUxNQWtHQTFVRUJoTUNVMEV4"
    "RmpBVUJnTlZCQXNNRFZKcGVXRmthQ0JDY21GdQpZMmd4SmpBa0JnTlZCQW9NSFUxaGVHbHRkVzBnVTNCbFpXUWdWR1ZqYUNC"
    "VGRYQndiSGtnVEZSRU1TWXdKQVlEClZRUUREQjFVVTFRdE9EZzJORE14TVRRMUxUTTVPVGs1T1RrNU9Ua3dNREF3TXpCV01C"
    "QUdCeXFHU000OUFnRUcKQlN1QkJBQUtBMElBQktGZ2ltdEVtdlJTQkswenI5TGdKQXRWU0NsOFZQWno2Y2RyNVgrTW9USG84"
    "dkhOTmx5Vwo1UTZ1N1Q4bmFQSnF0R29UakpqYVBJTUo0dTE3ZFNrL1ZIaWdnZWN3Z2VRR0NTcUdTSWIzRFFFSkRqR0IxakNC"
    "CjB6QWhCZ2tyQmdFRUFZSTNGQUlFRkF3U1drRlVRMEV0UTI5a1pTMVRhV2R1YVc1bk1JR3RCZ05WSFJFRWdhVXcKZ2FLa2da"
    "OHdnWnd4T3pBNUJnTlZCQVFNTWpFdFZGTlVmREl0VkZOVWZETXRaV1F5TW1ZeFpEZ3RaVFpoTWkweApNVEU0TFRsaU5UZ3Ra"
    "RGxoT0dZeE1XVTBORFZtTVI4d0hRWUtDWkltaVpQeUxHUUJBUXdQTXprNU9UazVPVGs1Ck9UQXdNREF6TVEwd0N3WURWUVFN"
    "REFReE1UQXdNUkV3RHdZRFZRUWFEQWhTVWxKRU1qa3lPVEVhTUJnR0ExVUUKRHd3UlUzVndjR3g1SUdGamRHbDJhWFJwWlhN"
    "d0NnWUlLb1pJemowRUF3SURSd0F3UkFJZ1NHVDBxQkJ6TFJHOApJS09melI1L085S0VicHA4bWc3V2VqUlllZkNZN3VRQ0lG"
    "WjB0U216MzAybmYvdGo0V2FxbVYwN01qZVVkVnVvClJJckpLYkxtUWZTNwotLS0tLUVORCBDRVJUSUZJQ0FURSBSRVFVRVNU"
    "LS0tLS0K"
)

COMPLIANCE_200: dict[str, Any] = {
    "requestID": 1234567890123,
    "dispositionMessage": "ISSUED",
    "binarySecurityToken": (
        "TUlJQ1BUQ0NBZU9nQXdJQkFnSUdBWXp6Z0VoTk1Bb0dDQ3FHU000OUJBTUNNQlV4RXpBUkJnTlZCQU1NQ21WSmJuWnZhV05w"
        "Ym1jd0hoY05NalF3TVRFd01UTXhNVFUwV2hjTk1qa3dNVEE1TWpFd01EQXdXakIxTVFzd0NRWURWUVFHRXdKVFFURVdNQlFH"
        "QTFVRUN3d05VbWw1WVdSb0lFSnlZVzVqYURFbU1DUUdBMVVFQ2d3ZFRXRjRhVzExYlNCVGNHVmxaQ0JVWldOb0lGTjFjSEJz"
        "ZVNCTVZFUXhKakFrQmdOVkJBTU1IVlJUVkMwNE9EWTBNekV4TkRVdE16azVPVGs1T1RrNU9UQXdNREF6TUZZd0VBWUhLb1pJ"
        "emowQ0FRWUZLNEVFQUFvRFFnQUVvV0NLYTBTYTlGSUVyVE92MHVBa0MxVklLWHhVOW5QcHgydmxmNHloTWVqeThjMDJYSmJs"
        "RHE3dFB5ZG84bXEwYWhPTW1Obzhnd25pN1h0MUtUOVVlS09Cd1RDQnZqQU1CZ05WSFJNQkFmOEVBakFBTUlHdEJnTlZIUkVF"
        "Z2FVd2dhS2tnWjh3Z1p3eE96QTVCZ05WQkFRTU1qRXRWRk5VZkRJdFZGTlVmRE10WldReU1tWXhaRGd0WlRaaE1pMHhNVEU0"
        "TFRsaU5UZ3RaRGxoT0dZeE1XVTBORFZtTVI4d0hRWUtDWkltaVpQeUxHUUJBUXdQTXprNU9UazVPVGs1T1RBd01EQXpNUTB3"
        "Q3dZRFZRUU1EQVF4TVRBd01SRXdEd1lEVlFRYURBaFNVbEpFTWpreU9URWFNQmdHQTFVRUR3d1JVM1Z3Y0d4NUlHRmpkR2wy"
        "YVhScFpYTXdDZ1lJS29aSXpqMEVBd0lEU0FBd1JRSWhBSUY0akljeHp2Q3lxVURUcDVPbXY3MlVweFBBTG1vUnl0OURZMjRq"
        "V21CUUFpQTBiYVo2WXJwcDV5SjRhaG9vb1czK09hOGtrYjMxZXZBb0hkdmdEODA2M3c9PQ=="
    ),
    "secret": "Dehvg1fc8GF6Jwt5bOxXwC6enR93VxeNEo2mlUatfgw=",
}

SANDBOX_PRODUCTION_200: dict[str, Any] = {
    "requestID": 30368,
    "tokenType": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3",
    "dispositionMessage": "ISSUED",
    "binarySecurityToken": (
        "TUlJRDNqQ0NBNFNnQXdJQkFnSVRFUUFBT0FQRjkwQWpzL3hjWHdBQkFBQTRBekFLQmdncWhrak9QUVFEQWpCaU1SVXdFd1lL"
        "Q1pJbWlaUHlMR1FCR1JZRmJHOWpZV3d4RXpBUkJnb0praWFKay9Jc1pBRVpGZ05uYjNZeEZ6QVZCZ29Ka2lhSmsvSXNaQUVa"
        "RmdkbGVIUm5ZWHAwTVJzd0dRWURWUVFERXhKUVVscEZTVTVXVDBsRFJWTkRRVFF0UTBFd0hoY05NalF3TVRFeE1Ea3hPVE13"
        "V2hjTk1qa3dNVEE1TURreE9UTXdXakIxTVFzd0NRWURWUVFHRXdKVFFURW1NQ1FHQTFVRUNoTWRUV0Y0YVcxMWJTQlRjR1Zs"
        "WkNCVVpXTm9JRk4xY0hCc2VTQk1WRVF4RmpBVUJnTlZCQXNURFZKcGVXRmthQ0JDY21GdVkyZ3hKakFrQmdOVkJBTVRIVlJU"
        "VkMwNE9EWTBNekV4TkRVdE16azVPVGs1T1RrNU9UQXdNREF6TUZZd0VBWUhLb1pJemowQ0FRWUZLNEVFQUFvRFFnQUVvV0NL"
        "YTBTYTlGSUVyVE92MHVBa0MxVklLWHhVOW5QcHgydmxmNHloTWVqeThjMDJYSmJsRHE3dFB5ZG84bXEwYWhPTW1Obzhnd25p"
        "N1h0MUtUOVVlS09DQWdjd2dnSURNSUd0QmdOVkhSRUVnYVV3Z2FLa2daOHdnWnd4T3pBNUJnTlZCQVFNTWpFdFZGTlVmREl0"
        "VkZOVWZETXRaV1F5TW1ZeFpEZ3RaVFpoTWkweE1URTRMVGxpTlRndFpEbGhPR1l4TVdVME5EVm1NUjh3SFFZS0NaSW1pWlB5"
        "TEdRQkFRd1BNems1T1RrNU9UazVPVEF3TURBek1RMHdDd1lEVlFRTURBUXhNVEF3TVJFd0R3WURWUVFhREFoU1VsSkVNamt5"
        "T1RFYU1CZ0dBMVVFRHd3UlUzVndjR3g1SUdGamRHbDJhWFJwWlhNd0hRWURWUjBPQkJZRUZFWCtZdm1tdG5Zb0RmOUJHYktv"
        "N29jVEtZSzFNQjhHQTFVZEl3UVlNQmFBRkp2S3FxTHRtcXdza0lGelZ2cFAyUHhUKzlObk1Ic0dDQ3NHQVFVRkJ3RUJCRzh3"
        "YlRCckJnZ3JCZ0VGQlFjd0FvWmZhSFIwY0RvdkwyRnBZVFF1ZW1GMFkyRXVaMjkyTG5OaEwwTmxjblJGYm5KdmJHd3ZVRkph"
        "UlVsdWRtOXBZMlZUUTBFMExtVjRkR2RoZW5RdVoyOTJMbXh2WTJGc1gxQlNXa1ZKVGxaUFNVTkZVME5CTkMxRFFTZ3hLUzVq"
        "Y25Rd0RnWURWUjBQQVFIL0JBUURBZ2VBTUR3R0NTc0dBUVFCZ2pjVkJ3UXZNQzBHSlNzR0FRUUJnamNWQ0lHR3FCMkUwUHNT"
        "aHUyZEpJZk8reG5Ud0ZWbWgvcWxaWVhaaEQ0Q0FXUUNBUkl3SFFZRFZSMGxCQll3RkFZSUt3WUJCUVVIQXdNR0NDc0dBUVVG"
        "QndNQ01DY0dDU3NHQVFRQmdqY1ZDZ1FhTUJnd0NnWUlLd1lCQlFVSEF3TXdDZ1lJS3dZQkJRVUhBd0l3Q2dZSUtvWkl6ajBF"
        "QXdJRFNBQXdSUUloQUxFL2ljaG1uV1hDVUtVYmNhM3ljaThvcXdhTHZGZEhWalFydmVJOXVxQWJBaUE5aEM0TThqZ01CQURQ"
        "U3ptZDJ1aVBKQTZnS1IzTEUwM1U3NWVxYkMvclhBPT0="
    ),
    "secret": "CkYsEXfV8c1gFHAtFWoZv73pGMvh/Qyo4LzKM2h/8Hg=",
}

RENEWAL_200: dict[str, Any] = {
    "requestID": 347,
    "tokenType": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3",
    "dispositionMessage": "ISSUED",
    "binarySecurityToken": (
        "TUlJRDRUQ0NBNGFnQXdJQkFnSVRGd0FBTzJVVXE4RmR0Z1lLNWdBQkFBQTdaVEFLQmdncWhrak9QUVFEQWpCaU1SVXdFd1lL"
        "Q1pJbWlaUHlMR1FCR1JZRmJHOWpZV3d4RXpBUkJnb0praWFKay9Jc1pBRVpGZ05uYjNZeEZ6QVZCZ29Ka2lhSmsvSXNaQUVa"
        "RmdkbGVIUm5ZWHAwTVJzd0dRWURWUVFERXhKUVVscEZTVTVXVDBsRFJWTkRRVEV0UTBFd0hoY05NalF3TVRFMU1UY3lOVEU1"
        "V2hjTk1qa3dNVEV6TVRjeU5URTVXakIxTVFzd0NRWURWUVFHRXdKVFFURW1NQ1FHQTFVRUNoTWRUV0Y0YVcxMWJTQlRjR1Zs"
        "WkNCVVpXTm9JRk4xY0hCc2VTQk1WRVF4RmpBVUJnTlZCQXNURFZKcGVXRmthQ0JDY21GdVkyZ3hKakFrQmdOVkJBTVRIVlJU"
        "VkMwNE9EWTBNekV4TkRVdE16azVPVGs1T1RrNU9UQXdNREF6TUZZd0VBWUhLb1pJemowQ0FRWUZLNEVFQUFvRFFnQUU1VlA5"
        "ZFFXbmtpNHpSZ1VZanBORDRBdVZVNFhBVmFxc0piVlR2ZEtJOUVJZHpvSlRGRENXSEdiR0ZOemtZUDB5b05MdG8vNS84MFlE"
        "QjV2TkZ1Z1hhS09DQWdrd2dnSUZNSUd2QmdOVkhSRUVnYWN3Z2FTa2dhRXdnWjR4T3pBNUJnTlZCQVFNTWpFdFZGTlVmREl0"
        "VkZOVWZETXRaV1F5TW1ZeFpEZ3RaVFpoTWkweE1URTRMVGxpTlRndFpEbGhPR1l4TVdVME5EVm1NUjh3SFFZS0NaSW1pWlB5"
        "TEdRQkFRd1BNems1T1RrNU9UazVPVEF3TURBek1RMHdDd1lEVlFRTURBUXhNVEF3TVJFd0R3WURWUVFhREFoU1VsSkVNamt5"
        "T1RFY01Cb0dBMVVFRHd3VDJZMVRkWEJ3YkhrZ1lXTjBhWFpwZEdsbGN6QWRCZ05WSFE0RUZnUVVadkJOcHdmMFJzWTBvU2Qy"
        "WXo2Tjg0aXhCRll3SHdZRFZSMGpCQmd3Rm9BVWNwUFJEbXY2SkZzVGhlckJGZk80RmZzYkJZMHdld1lJS3dZQkJRVUhBUUVF"
        "YnpCdE1Hc0dDQ3NHQVFVRkJ6QUNobDlvZEhSd09pOHZZV2xoTVM1NllYUmpZUzVuYjNZdWMyRXZRMlZ5ZEVWdWNtOXNiQzlR"
        "VWxwRmFXNTJiMmxqWlZORFFURXVaWGgwWjJGNmRDNW5iM1l1Ykc5allXeGZVRkphUlVsT1ZrOUpRMFZUUTBFeExVTkJLREVw"
        "TG1OeWREQU9CZ05WSFE4QkFmOEVCQU1DQjRBd1BBWUpLd1lCQkFHQ054VUhCQzh3TFFZbEt3WUJCQUdDTnhVSWdZYW9IWVRR"
        "K3hLRzdaMGtoODc3R2RQQVZXYUgrcVZsaGRtRVBnSUJaQUlCRWpBZEJnTlZIU1VFRmpBVUJnZ3JCZ0VGQlFjREF3WUlLd1lC"
        "QlFVSEF3SXdKd1lKS3dZQkJBR0NOeFVLQkJvd0dEQUtCZ2dyQmdFRkJRY0RBekFLQmdnckJnRUZCUWNEQWpBS0JnZ3Foa2pP"
        "UFFRREFnTkpBREJHQWlFQS9vaDRIb2FlTGh6SDFNN2YrTjBrSmZoSW42RHlzQkZaWEZNcGdnK3poeG9DSVFDVWwweEtyTGxu"
        "ZEM5V25QdGVSNUx1dVF2amdQQUpvUklFd2JDeVJpSXk2dw0K"
    ),
    "secret": "1npmzeTq4VnKFQaZ5/9SwUxNhoLtuMWZVLVWUm3MTVU=",
}

RENEWAL_428: dict[str, Any] = {
    "requestID": 1234567890123,
    "tokenType": None,
    "dispositionMessage": "NOT_COMPLIANT",
    "binarySecurityToken": (
        "TUlJQ1FEQ0NBZVdnQXdJQkFnSUdBWTBPTFNiWk1Bb0dDQ3FHU000OUJBTUNNQlV4RXpBUkJnTlZCQU1NQ21WSmJuWnZhV05w"
        "Ym1jd0hoY05NalF3TVRFMU1UY3pNRFV4V2hjTk1qa3dNVEUwTWpFd01EQXdXakIxTVFzd0NRWURWUVFHRXdKVFFURVdNQlFH"
        "QTFVRUN3d05VbWw1WVdSb0lFSnlZVzVqYURFbU1DUUdBMVVFQ2d3ZFRXRjRhVzExYlNCVGNHVmxaQ0JVWldOb0lGTjFjSEJz"
        "ZVNCTVZFUXhKakFrQmdOVkJBTU1IVlJUVkMwNE9EWTBNekV4TkRVdE16azVPVGs1T1RrNU9UQXdNREF6TUZZd0VBWUhLb1pJ"
        "emowQ0FRWUZLNEVFQUFvRFFnQUU1VlA5ZFFXbmtpNHpSZ1VZanBORDRBdVZVNFhBVmFxc0piVlR2ZEtJOUVJZHpvSlRGRENX"
        "SEdiR0ZOemtZUDB5b05MdG8vNS84MFlEQjV2TkZ1Z1hhS09Cd3pDQndEQU1CZ05WSFJNQkFmOEVBakFBTUlHdkJnTlZIUkVF"
        "Z2Fjd2dhU2tnYUV3Z1o0eE96QTVCZ05WQkFRTU1qRXRWRk5VZkRJdFZGTlVmRE10WldReU1tWXhaRGd0WlRaaE1pMHhNVEU0"
        "TFRsaU5UZ3RaRGxoT0dZeE1XVTBORFZtTVI4d0hRWUtDWkltaVpQeUxHUUJBUXdQTXprNU9UazVPVGs1T1RBd01EQXpNUTB3"
        "Q3dZRFZRUU1EQVF4TVRBd01SRXdEd1lEVlFRYURBaFNVbEpFTWpreU9URWNNQm9HQTFVRUR3d1QyWTFUZFhCd2JIa2dZV04w"
        "YVhacGRHbGxjekFLQmdncWhrak9QUVFEQWdOSkFEQkdBaUVBM1JsTTJlaGZaMzFmdk5yRGlJKzI5c0crNGJVVlg2QWZ1eEJu"
        "NUJiLzZ4TUNJUUQ5ZmxVNTc4U0htdEdZeTNWaW9LSU1VMFpMVHJaT2liOXdHVTliTFJiYll3PT0="
    ),
    "secret": "goDgeIdM5mkfTThl1unu8rP9XhknKWAc24hafXZS1f4=",
    "errors": None,
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def answering(status: int, payload: dict[str, Any], seen: list[httpx.Request]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, content=json.dumps(payload).encode())

    return httpx.MockTransport(handler)


def name_pairs(certificate: x509.Certificate, which: str) -> str:
    name = certificate.subject if which == "subject" else certificate.issuer
    return ", ".join(f"{attribute.rfc4514_attribute_name}={attribute.value!s}" for attribute in name)


def some_credentials() -> Credentials:
    return Credentials(SANDBOX_PRODUCTION_200["binarySecurityToken"], SANDBOX_PRODUCTION_200["secret"])


SWAGGER_CSR_PEM = base64.b64decode(SWAGGER_CSR_REQUEST_VALUE).decode("ascii")


@pytest.mark.anyio
async def test_swagger_compliance_example_round_trips_request_and_answer() -> None:
    seen: list[httpx.Request] = []
    async with ZatcaClient(ZatcaSettings(), transport=answering(200, COMPLIANCE_200, seen)) as client:
        csid = await client.request_compliance_csid(Environment.DEVELOPMENT, SWAGGER_CSR_PEM, "123345")

    # The request body is byte-for-byte the csr value of ZATCA's own Swagger example.
    assert json.loads(seen[0].content) == {"csr": SWAGGER_CSR_REQUEST_VALUE}
    assert seen[0].url == f"{SANDBOX}/compliance"
    assert csid.request_id == "1234567890123"
    assert csid.disposition_message == "ISSUED"
    assert csid.binary_security_token == COMPLIANCE_200["binarySecurityToken"]
    assert csid.secret == "Dehvg1fc8GF6Jwt5bOxXwC6enR93VxeNEo2mlUatfgw="
    assert csid.token_type is None
    certificate = x509.load_der_x509_certificate(csid.certificate_der)
    assert name_pairs(certificate, "subject") == SUBJECT_CSR_ORDER
    assert name_pairs(certificate, "issuer") == "CN=eInvoicing"
    assert certificate.serial_number == 0x018CF380484D


@pytest.mark.anyio
async def test_sandbox_fixed_production_csid_parses() -> None:
    seen: list[httpx.Request] = []
    transport = answering(200, SANDBOX_PRODUCTION_200, seen)
    async with ZatcaClient(ZatcaSettings(), transport=transport) as client:
        compliance = Credentials(COMPLIANCE_200["binarySecurityToken"], COMPLIANCE_200["secret"])
        csid = await client.request_production_csid(Environment.DEVELOPMENT, compliance, "1234567890123")

    assert seen[0].url == f"{SANDBOX}/production/csids"
    assert csid.request_id == "30368"
    assert csid.token_type == (
        "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"
    )
    assert csid.credentials == Credentials(
        SANDBOX_PRODUCTION_200["binarySecurityToken"], "CkYsEXfV8c1gFHAtFWoZv73pGMvh/Qyo4LzKM2h/8Hg="
    )
    certificate = x509.load_der_x509_certificate(csid.certificate_der)
    assert name_pairs(certificate, "subject") == SUBJECT_CA_ORDER
    assert name_pairs(certificate, "issuer") == "DC=local, DC=gov, DC=extgazt, CN=PRZEINVOICESCA4-CA"
    assert certificate.serial_number == 0x1100003803C5F74023B3FC5C5F000100003803


@pytest.mark.anyio
async def test_renewal_200_with_crlf_and_unpadded_inner_text_is_issued() -> None:
    inner_text = base64.b64decode(RENEWAL_200["binarySecurityToken"])
    # The quirk this test exists for: ZATCA's own example is CRLF-terminated and lacks its padding.
    assert inner_text.endswith(b"\r\n")
    assert len(inner_text.strip()) % 4 != 0

    seen: list[httpx.Request] = []
    async with ZatcaClient(ZatcaSettings(), transport=answering(200, RENEWAL_200, seen)) as client:
        outcome = await client.renew_production_csid(
            Environment.DEVELOPMENT, some_credentials(), SWAGGER_CSR_PEM, "123345"
        )

    assert seen[0].method == "PATCH"
    assert outcome.issued is True
    assert outcome.csid.request_id == "347"
    assert outcome.csid.binary_security_token == RENEWAL_200["binarySecurityToken"]
    certificate = x509.load_der_x509_certificate(outcome.csid.certificate_der)
    assert name_pairs(certificate, "subject") == SUBJECT_CA_ORDER
    assert name_pairs(certificate, "issuer") == "DC=local, DC=gov, DC=extgazt, CN=PRZEINVOICESCA1-CA"
    assert certificate.serial_number == 0x1700003B6514ABC15DB6060AE6000100003B65


@pytest.mark.anyio
async def test_renewal_428_returns_renewed_compliance_credentials() -> None:
    seen: list[httpx.Request] = []
    async with ZatcaClient(ZatcaSettings(), transport=answering(428, RENEWAL_428, seen)) as client:
        outcome = await client.renew_production_csid(
            Environment.DEVELOPMENT, some_credentials(), SWAGGER_CSR_PEM, "123345"
        )

    assert outcome.issued is False
    assert outcome.csid.request_id == "1234567890123"
    assert outcome.csid.disposition_message == "NOT_COMPLIANT"
    assert outcome.csid.credentials == Credentials(
        RENEWAL_428["binarySecurityToken"], "goDgeIdM5mkfTThl1unu8rP9XhknKWAc24hafXZS1f4="
    )
    certificate = x509.load_der_x509_certificate(outcome.csid.certificate_der)
    assert name_pairs(certificate, "subject") == SUBJECT_CSR_ORDER
    assert name_pairs(certificate, "issuer") == "CN=eInvoicing"
    assert certificate.serial_number == 0x018D0E2D26D9
