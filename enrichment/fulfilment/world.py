"""The world the demo merchants ship in: countries (names, streets, phone and IBAN formats),
carriers, warehouses and the workspaces' business profiles.

Static data only. Patterns use ``#`` for a digit and ``L`` for an upper-case letter.
"""

from __future__ import annotations

from dataclasses import dataclass

# Customs territories: a parcel crossing from one to another can be held at customs.
EU = "EU"


@dataclass(frozen=True)
class City:
    name: str
    postcode: str  # pattern
    region: str = ""


@dataclass(frozen=True)
class Country:
    code: str
    name: str
    customs: str
    address: str  # format: {number} {street} {postcode} {city} {region}
    cities: tuple[City, ...]
    streets: tuple[str, ...]
    phones: tuple[str, ...]  # international and national formats
    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    email_domains: tuple[str, ...]
    iban: str | None  # BBAN pattern; None where IBANs are not used
    unit: str = "Apt {n}"


COUNTRIES: dict[str, Country] = {
    country.code: country
    for country in (
        Country(
            "GB",
            "United Kingdom",
            "GB",
            "{number} {street}, {city} {postcode}",
            (
                City("London", "E# #LL"),
                City("Manchester", "M## #LL"),
                City("Birmingham", "B## #LL"),
                City("Leeds", "LS# #LL"),
                City("Bristol", "BS# #LL"),
                City("Edinburgh", "EH# #LL"),
                City("Cardiff", "CF## #LL"),
            ),
            (
                "Kingsway",
                "Church Road",
                "Station Road",
                "Victoria Street",
                "Albert Road",
                "Mill Lane",
                "Park Avenue",
                "High Street",
            ),
            ("+44 7### ######", "+44 (0)7### ######", "+44 20 #### ####", "07### ######"),
            ("Oliver", "Amelia", "Harry", "Isla", "George", "Ava", "Jack", "Sophie", "Priya"),
            ("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Patel", "Evans"),
            ("gmail.com", "outlook.com", "btinternet.com", "hotmail.co.uk", "icloud.com"),
            "LLLL##############",
            "Flat {n}",
        ),
        Country(
            "IE",
            "Ireland",
            EU,
            "{number} {street}, {city}, {postcode}",
            (
                City("Dublin", "D0# L#L#"),
                City("Cork", "T12 L#L#"),
                City("Galway", "H91 L#L#"),
            ),
            ("Main Street", "Patrick Street", "Dame Street", "Shop Street", "Grafton Street"),
            ("+353 8# ### ####", "+353 1 ### ####", "08# ### ####"),
            ("Aoife", "Cian", "Saoirse", "Oisin", "Niamh", "Sean", "Ciara", "Conor"),
            ("Murphy", "Kelly", "O'Sullivan", "Walsh", "Byrne", "Ryan", "O'Brien"),
            ("gmail.com", "eircom.net", "outlook.ie", "yahoo.ie"),
            "LLLL##############",
        ),
        Country(
            "FR",
            "France",
            EU,
            "{number} {street}, {postcode} {city}",
            (
                City("Paris", "750##"),
                City("Lyon", "6900#"),
                City("Marseille", "130##"),
                City("Lille", "59000"),
                City("Bordeaux", "33000"),
                City("Toulouse", "31000"),
                City("Nantes", "44000"),
            ),
            (
                "rue de la République",
                "avenue Jean Jaurès",
                "boulevard Voltaire",
                "rue Victor Hugo",
                "rue du Faubourg Saint-Antoine",
                "place Bellecour",
                "rue des Lilas",
            ),
            ("+33 6 ## ## ## ##", "+33 (0)7 ## ## ## ##", "+33 1 ## ## ## ##", "06.##.##.##.##"),
            ("Léa", "Hugo", "Chloé", "Louis", "Camille", "Gabriel", "Manon", "Lucas", "Inès"),
            ("Martin", "Bernard", "Dubois", "Moreau", "Laurent", "Lefèvre", "Roux", "Fournier"),
            ("gmail.com", "orange.fr", "free.fr", "laposte.net", "hotmail.fr", "yahoo.fr"),
            "#######################",
            "Apt {n}",
        ),
        Country(
            "DE",
            "Germany",
            EU,
            "{street} {number}, {postcode} {city}",
            (
                City("Berlin", "10###"),
                City("Hamburg", "20###"),
                City("München", "80###"),
                City("Köln", "50###"),
                City("Leipzig", "04###"),
                City("Frankfurt am Main", "60###"),
            ),
            (
                "Hauptstraße",
                "Bahnhofstraße",
                "Schillerstraße",
                "Goethestraße",
                "Lindenallee",
                "Am Markt",
                "Gartenweg",
            ),
            ("+49 15# ########", "+49 (0)30 #######", "+49 17# #######", "0049 16# #######"),
            ("Lukas", "Mia", "Leon", "Hannah", "Finn", "Emma", "Jonas", "Lena", "Mehmet"),
            ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Wagner", "Becker", "Yilmaz"),
            ("gmx.de", "web.de", "t-online.de", "gmail.com", "posteo.de"),
            "##################",
            "Whg. {n}",
        ),
        Country(
            "NL",
            "Netherlands",
            EU,
            "{street} {number}, {postcode} {city}",
            (
                City("Amsterdam", "10## LL"),
                City("Rotterdam", "30## LL"),
                City("Utrecht", "35## LL"),
                City("Den Haag", "25## LL"),
                City("Eindhoven", "56## LL"),
            ),
            (
                "Keizersgracht",
                "Dorpsstraat",
                "Kerkstraat",
                "Stationsweg",
                "Molenweg",
                "Nieuwstraat",
            ),
            ("+31 6 ########", "+31 (0)20 ### ####", "06-########", "+31 6 ## ## ## ##"),
            ("Daan", "Emma", "Sem", "Julia", "Lucas", "Tess", "Milan", "Sanne", "Bram"),
            ("de Jong", "Jansen", "de Vries", "van den Berg", "Bakker", "Visser", "Smit"),
            ("gmail.com", "ziggo.nl", "kpnmail.nl", "hotmail.nl", "outlook.com"),
            "LLLL##########",
        ),
        Country(
            "BE",
            "Belgium",
            EU,
            "{street} {number}, {postcode} {city}",
            (
                City("Bruxelles", "1000"),
                City("Antwerpen", "2000"),
                City("Gent", "9000"),
                City("Liège", "4000"),
            ),
            ("Rue Neuve", "Meir", "Veldstraat", "Chaussée de Louvain", "Kerkstraat"),
            ("+32 4## ## ## ##", "+32 (0)2 ### ## ##", "04## ## ## ##"),
            ("Noah", "Olivia", "Arthur", "Louise", "Jules", "Elise", "Victor", "Marie"),
            ("Peeters", "Janssens", "Maes", "Jacobs", "Mertens", "Dubois", "Lambert"),
            ("telenet.be", "skynet.be", "gmail.com", "proximus.be"),
            "############",
        ),
        Country(
            "ES",
            "Spain",
            EU,
            "{street} {number}, {postcode} {city}",
            (
                City("Madrid", "280##"),
                City("Barcelona", "080##"),
                City("Valencia", "460##"),
                City("Sevilla", "410##"),
            ),
            ("Calle Mayor", "Calle de Alcalá", "Carrer de Balmes", "Avenida de la Constitución"),
            ("+34 6## ### ###", "+34 91 ### ## ##", "6## ## ## ##"),
            ("Lucía", "Hugo", "Martina", "Pablo", "Sofía", "Álvaro", "Carmen", "Javier"),
            ("García", "Fernández", "López", "Martínez", "Sánchez", "Pérez", "Gómez"),
            ("gmail.com", "hotmail.es", "yahoo.es", "telefonica.net"),
            "####################",
            "Piso {n}",
        ),
        Country(
            "IT",
            "Italy",
            EU,
            "{street} {number}, {postcode} {city}",
            (
                City("Roma", "001##"),
                City("Milano", "201##"),
                City("Torino", "101##"),
                City("Bologna", "401##"),
            ),
            (
                "Via Roma",
                "Via Garibaldi",
                "Corso Vittorio Emanuele II",
                "Via Dante",
                "Viale Europa",
            ),
            ("+39 3## ### ####", "+39 06 #### ####", "3## ### ####"),
            ("Giulia", "Leonardo", "Sofia", "Francesco", "Aurora", "Alessandro", "Chiara"),
            ("Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo"),
            ("gmail.com", "libero.it", "virgilio.it", "alice.it"),
            "L######################",
            "Int. {n}",
        ),
        Country(
            "CH",
            "Switzerland",
            "CH",
            "{street} {number}, {postcode} {city}",
            (
                City("Zürich", "80##"),
                City("Basel", "40##"),
                City("Genève", "12##"),
                City("Bern", "30##"),
                City("Lausanne", "10##"),
            ),
            ("Bahnhofstrasse", "Rue du Rhône", "Hauptgasse", "Dorfstrasse", "Seestrasse"),
            ("+41 7# ### ## ##", "+41 (0)44 ### ## ##", "07# ### ## ##"),
            ("Noah", "Mia", "Luca", "Emma", "Elias", "Lina", "Matteo", "Anna", "Léon"),
            ("Müller", "Meier", "Schmid", "Keller", "Weber", "Huber", "Favre", "Rochat"),
            ("bluewin.ch", "gmail.com", "sunrise.ch", "gmx.ch", "proton.me"),
            "#################",
        ),
        Country(
            "SE",
            "Sweden",
            EU,
            "{street} {number}, {postcode} {city}",
            (
                City("Stockholm", "1## ##"),
                City("Göteborg", "4## ##"),
                City("Malmö", "2## ##"),
                City("Uppsala", "75# ##"),
            ),
            ("Storgatan", "Drottninggatan", "Kungsgatan", "Södra Förstadsgatan", "Skolgatan"),
            ("+46 7# ### ## ##", "+46 (0)8 ### ### ##", "07#-### ## ##"),
            ("Elsa", "William", "Alice", "Hugo", "Maja", "Oscar", "Astrid", "Liam", "Ebba"),
            ("Andersson", "Johansson", "Karlsson", "Nilsson", "Eriksson", "Larsson", "Lindqvist"),
            ("gmail.com", "telia.com", "hotmail.se", "outlook.com", "bredband.net"),
            "####################",
            "Lgh {n}",
        ),
        Country(
            "NO",
            "Norway",
            "NO",
            "{street} {number}, {postcode} {city}",
            (
                City("Oslo", "0###"),
                City("Bergen", "5###"),
                City("Trondheim", "7###"),
                City("Stavanger", "40##"),
            ),
            ("Storgata", "Kirkegata", "Karl Johans gate", "Strandgaten", "Skolegata"),
            ("+47 ### ## ###", "+47 4# ## ## ##", "9## ## ###"),
            ("Nora", "Jakob", "Emma", "Filip", "Ingrid", "Lukas", "Sofie", "Henrik"),
            ("Hansen", "Johansen", "Olsen", "Larsen", "Andersen", "Pedersen", "Nilsen"),
            ("gmail.com", "online.no", "hotmail.no", "outlook.com"),
            "###########",
        ),
        Country(
            "US",
            "United States",
            "US",
            "{number} {street}, {city}, {region} {postcode}",
            (
                City("Austin", "787##", "TX"),
                City("Seattle", "981##", "WA"),
                City("Columbus", "432##", "OH"),
                City("Chicago", "606##", "IL"),
                City("Denver", "802##", "CO"),
                City("Atlanta", "303##", "GA"),
                City("Brooklyn", "112##", "NY"),
            ),
            ("Main St", "Oak Avenue", "Maple Drive", "Market Street", "Elm St", "2nd Ave"),
            ("+1 (###) ###-####", "+1 ###-###-####", "(###) ###-####", "+1 ### ### ####"),
            ("James", "Olivia", "Michael", "Emma", "David", "Ava", "Daniel", "Mia", "Carlos"),
            ("Johnson", "Williams", "Miller", "Davis", "Garcia", "Rodriguez", "Nguyen", "Clark"),
            ("gmail.com", "yahoo.com", "outlook.com", "icloud.com", "aol.com", "comcast.net"),
            None,
            "Apt {n}",
        ),
        Country(
            "CA",
            "Canada",
            "CA",
            "{number} {street}, {city}, {region} {postcode}",
            (
                City("Toronto", "M#L #L#", "ON"),
                City("Vancouver", "V#L #L#", "BC"),
                City("Montréal", "H#L #L#", "QC"),
                City("Calgary", "T#L #L#", "AB"),
            ),
            ("King Street West", "Rue Sainte-Catherine", "Granville Street", "Yonge Street"),
            ("+1 (###) ###-####", "+1 ###-###-####", "(###) ###-####"),
            ("Liam", "Charlotte", "Noah", "Amelia", "Ethan", "Chloe", "Félix", "Maya"),
            ("Tremblay", "Smith", "Roy", "Gagnon", "Lee", "Wilson", "MacDonald", "Chen"),
            ("gmail.com", "rogers.com", "shaw.ca", "videotron.ca", "outlook.com"),
            None,
            "Unit {n}",
        ),
    )
}


@dataclass(frozen=True)
class Carrier:
    name: str
    countries: frozenset[str] | None  # domestic networks; None = international
    tracking: str  # pattern; "S10" = UPU format with a check digit and the origin country
    hubs: tuple[str, ...]
    express: bool = False
    language: str = "en"  # language of its tracking events
    origin: str = ""  # for S10 numbers


CARRIERS: dict[str, Carrier] = {
    carrier.name: carrier
    for carrier in (
        Carrier(
            "DHL Express",
            None,
            "##########",
            ("Leipzig hub", "Brussels gateway", "East Midlands hub", "Cincinnati hub"),
            express=True,
        ),
        Carrier(
            "DHL Parcel",
            frozenset({"DE", "NL", "BE"}),
            "JVGL##############",
            ("Paketzentrum Leipzig", "Nieuwegein depot", "Bochum hub"),
            language="de",
        ),
        Carrier(
            "UPS",
            None,
            "1ZLLL###LL########",
            ("Louisville Worldport", "Cologne hub", "Koeln-Bonn gateway", "East Midlands"),
            express=True,
        ),
        Carrier(
            "FedEx",
            None,
            "############",
            ("Memphis hub", "Paris CDG hub", "Liège gateway", "Indianapolis hub"),
            express=True,
        ),
        Carrier(
            "La Poste",
            frozenset({"FR"}),
            "6A###########",
            ("plateforme de Roissy", "plateforme de Chilly-Mazarin", "Lyon sorting centre"),
            language="fr",
        ),
        Carrier(
            "Chronopost",
            frozenset({"FR", "BE"}),
            "S10",
            ("Chilly-Mazarin hub", "Lyon hub"),
            express=True,
            language="fr",
            origin="FR",
        ),
        Carrier(
            "PostNL",
            frozenset({"NL", "BE"}),
            "3SLLLL#######",
            ("sorteercentrum Nieuwegein", "Amsterdam sorting centre", "Den Bosch depot"),
            language="nl",
        ),
        Carrier(
            "Royal Mail",
            frozenset({"GB"}),
            "S10",
            ("Warrington mail centre", "Heathrow Worldwide Distribution Centre", "Daventry hub"),
            origin="GB",
        ),
        Carrier(
            "Evri",
            frozenset({"GB"}),
            "H00LL###########",
            ("Rugby hub", "Warrington depot"),
        ),
        Carrier(
            "DPD",
            frozenset({"DE", "FR", "NL", "BE", "GB", "IE", "ES", "IT"}),
            "0#############",
            ("Hinckley hub", "Aschaffenburg hub", "Oude Tonge depot"),
        ),
        Carrier(
            "GLS",
            frozenset({"DE", "NL", "BE", "FR", "ES", "IT", "IE"}),
            "###########",
            ("Neuenstein hub", "Utrecht depot", "Bergamo hub"),
        ),
        Carrier(
            "Deutsche Post",
            frozenset({"DE"}),
            "S10",
            ("Briefzentrum Frankfurt", "Internationales Postzentrum Niederaula"),
            language="de",
            origin="DE",
        ),
        Carrier("Correos", frozenset({"ES"}), "S10", ("Madrid-Barajas CTA",), origin="ES"),
        Carrier("Poste Italiane", frozenset({"IT"}), "S10", ("CMP Milano Roserio",), origin="IT"),
        Carrier(
            "Swiss Post",
            frozenset({"CH"}),
            "99.##.######.########",
            ("Briefzentrum Zürich-Mülligen", "Paketzentrum Härkingen"),
            language="de",
        ),
        Carrier(
            "PostNord",
            frozenset({"SE", "NO"}),
            "S10",
            ("Malmö terminal", "Hallsberg terminal", "Oslo terminal"),
            origin="SE",
        ),
        Carrier("Bring", frozenset({"NO", "SE"}), "S10", ("Oslo terminal",), origin="NO"),
        Carrier("An Post", frozenset({"IE"}), "S10", ("Dublin Mail Centre",), origin="IE"),
        Carrier(
            "USPS",
            frozenset({"US"}),
            "9400##################",
            ("Chicago NDC", "Memphis P&DC", "Denver NDC"),
        ),
        Carrier(
            "Canada Post",
            frozenset({"CA"}),
            "70##############",
            ("Gateway West, Mississauga", "Vancouver mail processing plant"),
        ),
    )
}


@dataclass(frozen=True)
class Warehouse:
    name: str
    country: str
    city: str


@dataclass(frozen=True)
class Profile:
    """What kind of business a workspace is: where it ships from and to, with whom, what it
    sells and which exceptions it tends to have."""

    slug: str
    company: str
    domain: str
    warehouses: tuple[Warehouse, ...]
    destinations: tuple[tuple[str, float], ...]
    carriers: tuple[str, ...]
    currency: str
    segments: tuple[tuple[str, float], ...]
    orders_per_customer: float
    items: tuple[str, ...]
    order_prefix: str
    sku_prefix: str
    types: tuple[tuple[str, float], ...]  # exception type -> weight
    amount: tuple[float, float]  # lognormal mu, sigma of an order's total


PROFILES: tuple[Profile, ...] = (
    Profile(
        "brightcart",
        "BrightCart",
        "brightcart.eu",
        (Warehouse("Venlo NL-1", "NL", "Venlo"), Warehouse("Leipzig DE-1", "DE", "Leipzig")),
        (
            ("DE", 0.28),
            ("NL", 0.2),
            ("FR", 0.15),
            ("BE", 0.1),
            ("ES", 0.08),
            ("IT", 0.07),
            ("GB", 0.06),
            ("CH", 0.04),
            ("NO", 0.02),
        ),
        (
            "DHL Parcel",
            "PostNL",
            "DPD",
            "GLS",
            "La Poste",
            "Correos",
            "Poste Italiane",
            "Royal Mail",
            "Swiss Post",
            "Bring",
            "DHL Express",
            "UPS",
        ),
        "EUR",
        (("Consumer", 0.85), ("SMB", 0.1), ("Mid-market", 0.05)),
        2.4,
        (
            "pair of wireless earbuds",
            "air fryer",
            "phone case",
            "LED desk lamp",
            "yoga mat",
            "espresso machine",
            "pair of running shoes",
            "smart watch",
            "bluetooth speaker",
            "kids' scooter",
        ),
        "BC",
        "BC",
        (
            ("carrier_delay", 0.36),
            ("address_invalid", 0.22),
            ("damaged_item", 0.16),
            ("stock_out", 0.16),
            ("customs_hold", 0.10),
        ),
        (3.9, 0.7),
    ),
    Profile(
        "maison-lumiere",
        "Maison Lumière",
        "maison-lumiere.fr",
        (Warehouse("Lyon FR-1", "FR", "Saint-Priest"),),
        (
            ("FR", 0.55),
            ("BE", 0.1),
            ("CH", 0.1),
            ("GB", 0.1),
            ("DE", 0.08),
            ("NL", 0.04),
            ("IT", 0.03),
        ),
        ("La Poste", "Chronopost", "DPD", "Swiss Post", "Royal Mail", "DHL Express", "UPS"),
        "EUR",
        (("Consumer", 0.8), ("SMB", 0.2)),
        1.8,
        (
            "ceramic vase",
            "glass pendant lamp",
            "linen cushion cover",
            "oak side table",
            "wall mirror 80cm",
            "porcelain dinner set",
            "rattan armchair",
            "scented candle set",
        ),
        "ML",
        "LUM",
        (
            ("carrier_delay", 0.28),
            ("address_invalid", 0.14),
            ("damaged_item", 0.32),
            ("stock_out", 0.12),
            ("customs_hold", 0.14),
        ),
        (4.6, 0.8),
    ),
    Profile(
        "tidewater-supply",
        "Tidewater Supply Co.",
        "tidewatersupply.com",
        (Warehouse("Memphis US-1", "US", "Memphis"), Warehouse("Reno US-2", "US", "Reno")),
        (("US", 0.86), ("CA", 0.14)),
        ("UPS", "FedEx", "USPS", "DHL Express", "Canada Post"),
        "USD",
        (("Enterprise", 0.25), ("Mid-market", 0.45), ("SMB", 0.3)),
        9.0,
        (
            "hydraulic hose fitting",
            "case of nitrile gloves",
            "torque wrench",
            "box of safety goggles",
            "box of M12 hex bolts",
            "pallet jack wheel",
            "industrial shelving unit",
            "LED high-bay light",
        ),
        "TW",
        "TWS",
        (
            ("carrier_delay", 0.34),
            ("address_invalid", 0.12),
            ("damaged_item", 0.14),
            ("stock_out", 0.28),
            ("customs_hold", 0.12),
        ),
        (5.4, 0.9),
    ),
    Profile(
        "kestrel-cycles",
        "Kestrel Cycles",
        "kestrelcycles.co.uk",
        (Warehouse("Daventry GB-1", "GB", "Daventry"),),
        (("GB", 0.6), ("IE", 0.12), ("FR", 0.08), ("DE", 0.08), ("NL", 0.07), ("BE", 0.05)),
        ("Royal Mail", "Evri", "DPD", "An Post", "DHL Express", "UPS"),
        "GBP",
        (("Consumer", 0.75), ("SMB", 0.25)),
        2.8,
        (
            "carbon handlebar",
            "disc brake rotor",
            "tubeless tyre",
            "12-speed chain",
            "saddle",
            "bike light set",
            "cycling jacket",
            "wheelset",
        ),
        "KC",
        "KES",
        (
            ("carrier_delay", 0.30),
            ("address_invalid", 0.18),
            ("damaged_item", 0.14),
            ("stock_out", 0.16),
            ("customs_hold", 0.22),
        ),
        (4.2, 0.8),
    ),
    Profile(
        "helvetia-provisions",
        "Helvetia Provisions",
        "helvetia-provisions.ch",
        (Warehouse("Basel CH-1", "CH", "Basel"),),
        (("CH", 0.5), ("DE", 0.2), ("FR", 0.15), ("IT", 0.1), ("GB", 0.05)),
        ("Swiss Post", "DHL Express", "UPS", "DPD", "La Poste"),
        "CHF",
        (("Consumer", 0.7), ("SMB", 0.2), ("Mid-market", 0.1)),
        3.5,
        (
            "chocolate gift box",
            "raclette cheese wheel",
            "1kg bag of coffee beans",
            "alpine honey set",
            "herbal tea collection",
            "fondue set",
        ),
        "HP",
        "HLV",
        (
            ("carrier_delay", 0.30),
            ("address_invalid", 0.12),
            ("damaged_item", 0.20),
            ("stock_out", 0.14),
            ("customs_hold", 0.24),
        ),
        (4.0, 0.6),
    ),
    Profile(
        "nordlys-home",
        "Nordlys Home",
        "nordlyshome.se",
        (Warehouse("Malmö SE-1", "SE", "Malmö"),),
        (("SE", 0.6), ("NO", 0.25), ("DE", 0.1), ("GB", 0.05)),
        ("PostNord", "Bring", "DHL Express", "UPS", "DPD", "Royal Mail"),
        "SEK",
        (("Consumer", 0.9), ("SMB", 0.1)),
        2.2,
        (
            "wool blanket",
            "ceramic mug set",
            "floor lamp",
            "sofa cushion",
            "candle holder",
            "linen bedding set",
            "teak serving board",
        ),
        "NH",
        "NRD",
        (
            ("carrier_delay", 0.34),
            ("address_invalid", 0.20),
            ("damaged_item", 0.18),
            ("stock_out", 0.14),
            ("customs_hold", 0.14),
        ),
        (6.4, 0.7),  # SEK
    ),
)

SERVICE_LEVELS: dict[str, tuple[int, ...]] = {
    "express": (24, 48),
    "standard": (72, 96, 120),
    "economy": (144, 168, 240),
}
SERVICE_WEIGHTS = (("express", 0.2), ("standard", 0.6), ("economy", 0.2))
