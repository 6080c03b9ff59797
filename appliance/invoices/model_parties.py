"""Reading the model's parties (seller and buyer: address, identification, VAT) with every
problem named by its path (`Buyer.PostalZone`)."""

from __future__ import annotations

import re
from typing import Any

from appliance.invoices.decode import BodyReader
from appliance.invoices.model import (
    BUYER_ID_SCHEMES,
    LONG_TEXT,
    SELLER_ID_SCHEMES,
    SHORT_TEXT,
    BuyerParty,
    PartyIdentification,
    SellerParty,
)
from appliance.x509.countries import ISO_3166_ALPHA2

_ADDRESS = ("StreetName", "BuildingNumber", "CitySubdivisionName", "CityName", "PostalZone", "CountryCode")
_SELLER = (*_ADDRESS, "Identification")
_BUYER = ("Name", "Vat", *_ADDRESS, "Identification")
_IDENTIFICATION = ("Scheme", "Id")
_VAT_NUMBER = re.compile(r"3[0-9]{13}3")
_ALPHANUMERIC = re.compile(r"[A-Za-z0-9]+")
_FOUR_DIGITS = re.compile(r"[0-9]{4}")
_FIVE_DIGITS = re.compile(r"[0-9]{5}")


def _read_address(
    reader: BodyReader, section: dict[str, Any], path: str, *, required: tuple[str, ...]
) -> dict[str, str | None]:
    values = {
        "StreetName": reader.text(
            section, "StreetName", path, required="StreetName" in required, max_chars=LONG_TEXT
        ),
        "BuildingNumber": reader.text(
            section, "BuildingNumber", path, required="BuildingNumber" in required, max_chars=SHORT_TEXT
        ),
        "CitySubdivisionName": reader.text(
            section,
            "CitySubdivisionName",
            path,
            required="CitySubdivisionName" in required,
            max_chars=SHORT_TEXT,
        ),
        "CityName": reader.text(
            section, "CityName", path, required="CityName" in required, max_chars=SHORT_TEXT
        ),
        "PostalZone": reader.text(
            section, "PostalZone", path, required="PostalZone" in required, max_chars=SHORT_TEXT
        ),
    }
    country = section.get("CountryCode")
    if country is None:
        values["CountryCode"] = None
    elif isinstance(country, str) and country.strip().upper() in ISO_3166_ALPHA2:
        values["CountryCode"] = country.strip().upper()
    else:
        reader.problem(f"{path}.CountryCode", "must be an ISO 3166 two-letter country code such as SA")
        values["CountryCode"] = None
    return values


def _read_identification(
    reader: BodyReader, section: dict[str, Any], path: str, schemes: tuple[str, ...]
) -> PartyIdentification | None:
    ident_path = f"{path}.Identification"
    ident = reader.optional_section(section, "Identification", path, _IDENTIFICATION)
    if ident is None:
        return None
    scheme = reader.code(ident, "Scheme", ident_path, schemes)
    ident_id = reader.text(
        ident,
        "Id",
        ident_path,
        required=True,
        max_chars=SHORT_TEXT,
        pattern=_ALPHANUMERIC,
        pattern_text="letters and digits only (BR-KSA-08, BR-KSA-14)",
    )
    if scheme is None or ident_id is None:
        return None
    return PartyIdentification(scheme=scheme, id=ident_id)


def read_seller(reader: BodyReader, top: dict[str, Any]) -> SellerParty | None:
    if top.get("Seller") is None:
        reader.problem("Seller", "is required (the seller's address and identification)", "Missing-Field")
        return None
    section = reader.section(top["Seller"], "Seller", _SELLER)
    if section is None:
        return None
    address = _read_address(
        reader,
        section,
        "Seller",
        required=("StreetName", "BuildingNumber", "CitySubdivisionName", "CityName", "PostalZone"),
    )
    country = address["CountryCode"] or ("SA" if section.get("CountryCode") is None else None)
    building = address["BuildingNumber"]
    if country == "SA" and building is not None and not _FOUR_DIGITS.fullmatch(building):
        reader.problem("Seller.BuildingNumber", "must be 4 digits for a Saudi address (BR-KSA-37)")
    postal = address["PostalZone"]
    if country == "SA" and postal is not None and not _FIVE_DIGITS.fullmatch(postal):
        reader.problem("Seller.PostalZone", "must be 5 digits for a Saudi address (BR-KSA-66)")
    identification = _read_identification(reader, section, "Seller", SELLER_ID_SCHEMES)
    if section.get("Identification") is None:
        reader.problem("Seller.Identification", "is required (for example a CRN; BR-KSA-08)", "Missing-Field")
    street, district, city = address["StreetName"], address["CitySubdivisionName"], address["CityName"]
    if (
        identification is None
        or country is None
        or street is None
        or building is None
        or district is None
        or city is None
        or postal is None
    ):
        return None
    return SellerParty(
        street_name=street,
        building_number=building,
        city_subdivision_name=district,
        city_name=city,
        postal_zone=postal,
        country_code=country,
        identification=identification,
    )


def read_buyer(reader: BodyReader, top: dict[str, Any], *, standard: bool) -> BuyerParty | None:
    if top.get("Buyer") is None:
        if standard:
            reader.problem("Buyer", "is required for a Standard (B2B) document", "Missing-Field")
        return None
    section = reader.section(top["Buyer"], "Buyer", _BUYER)
    if section is None:
        return None
    name = reader.text(section, "Name", "Buyer", required=standard, max_chars=LONG_TEXT)
    vat = reader.text(
        section,
        "Vat",
        "Buyer",
        required=False,
        max_chars=15,
        pattern=_VAT_NUMBER,
        pattern_text="a VAT number of 15 digits starting and ending with 3",
    )
    country_given = section.get("CountryCode")
    country_preview = country_given.strip().upper() if isinstance(country_given, str) else None
    required: tuple[str, ...] = ()
    if standard:
        # BR-KSA-10 for every buyer, BR-KSA-63 adds the Saudi national address parts.
        required = ("StreetName", "CityName")
        if country_preview == "SA":
            required += ("BuildingNumber", "PostalZone", "CitySubdivisionName")
    address = _read_address(reader, section, "Buyer", required=required)
    if standard and country_given is None:
        reader.problem("Buyer.CountryCode", "is required for a Standard (B2B) document", "Missing-Field")
    postal = address["PostalZone"]
    if address["CountryCode"] == "SA" and postal is not None and not _FIVE_DIGITS.fullmatch(postal):
        reader.problem("Buyer.PostalZone", "must be 5 digits for a Saudi address (BR-KSA-67)")
    identification = _read_identification(reader, section, "Buyer", BUYER_ID_SCHEMES)
    if standard and vat is None and section.get("Vat") is None and section.get("Identification") is None:
        reader.problem(
            "Buyer.Identification",
            "is required when the buyer has no VAT number (BR-KSA-81)",
            "Missing-Field",
        )
    return BuyerParty(
        name=name,
        vat=vat,
        street_name=address["StreetName"],
        building_number=address["BuildingNumber"],
        city_subdivision_name=address["CitySubdivisionName"],
        city_name=address["CityName"],
        postal_zone=postal,
        country_code=address["CountryCode"],
        identification=identification,
    )
