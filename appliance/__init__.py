"""ZATCA (Fatoora) onboarding appliance: device keys live in a PKCS#11 token."""

__version__ = "0.1.0"
