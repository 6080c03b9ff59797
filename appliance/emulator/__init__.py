"""A look-alike of ZATCA's Fatoora onboarding gateway, served on loopback for trials and tests.

It answers the three environments' base paths (`/e-invoicing/developer-portal`, `/simulation`,
`/core`) with ZATCA's own response shapes, issues real X.509 certificates from its own CA, and can
misbehave on request (latency, 500, hang, malformed JSON, a certificate for the wrong key).

Choices where ZATCA's behaviour is unknown or lenient (zatca-protocol.md 4 and 11):

- **The CSR is checked equally strictly everywhere**, the developer portal included: secp256k1
  with ecdsa-with-SHA256 and a valid self-signature; subject exactly C, OU, O, CN in that DER order;
  one extensionRequest with only the template name and a subjectAltName holding one directoryName
  with SN (2.5.4.4), UID, title, registeredAddress, businessCategory as UTF8Strings; the template
  must be the environment's own (TSTZATCA-/PREZATCA-/ZATCA-Code-Signing). ZATCA's real sandbox
  does not enforce the template; the emulator does, so that an environment mix-up is caught before
  it meets simulation or production. Extra subject RDNs or extensions, which ZATCA's sandbox is
  reported to tolerate, are refused for the same reason.
- **OTPs**: the developer portal accepts only `123345`, never spent. Simulation and core accept
  only OTPs minted by `POST /emulator/otps` for that environment and VAT, valid `otp_ttl_seconds`
  (one hour), and spent only when a certificate is issued ("one OTP per CCSID"): a request refused
  for its CSR leaves the OTP usable for a corrected retry within the hour. Onboarding and renewal
  OTPs share one pool.
- **Production CSIDs**: issued by the same emulator CA, subject re-ordered to C, O, OU, CN as
  ZATCA's production CAs do. Each `POST /production/csids` with valid compliance credentials issues
  a new production CSID, so a client may retry after a lost answer. A compliance CSID from another
  environment gets `Invalid-CurrentCCSID`; wrong or missing credentials get ZATCA's 401 shape.
- **Renewal** (`PATCH /production/csids`) answers 200 with a new production CSID, or 428 with new
  compliance credentials when `renewal_requires_compliance` is set (settings or
  `PATCH /emulator/behaviour`). The renewal CSR must carry the VAT of the CSID being renewed.
- Invalid-CSR answers keep ZATCA's shape and add `emulatorDetail`, which ZATCA does not send,
  naming the first problem found.
- **Invoices** (`/compliance/invoices`, reporting, clearance; see `invoice_desk` and
  `invoice_checks`): judged strictly on every environment, standard documents' stamps included.
  Passed compliance documents credit their kind's step; the `POST /emulator/compliance-steps`
  shortcut and `auto_pass_compliance_steps` stay for tests of onboarding alone. Clearance
  re-stamps with the emulator CA's key; the PIH chain only warns.
- Nothing an emulator logs contains an OTP, a secret, a token or CSR content.
"""

from appliance.emulator.app import create_emulator_app
from appliance.emulator.server import serve_emulator
from appliance.emulator.settings import EmulatorSettings, FaultSpec, parse_fault_argument

__all__ = ["EmulatorSettings", "FaultSpec", "create_emulator_app", "parse_fault_argument", "serve_emulator"]
