//! Realistic text for a museum catalogue: people, titles, descriptions, provenance, inscriptions,
//! e-mail addresses, browsers and IP addresses. Everything is drawn from a caller's RNG.

use rand::Rng;
use rand::seq::SliceRandom;

pub const FIRST_NAMES: &[&str] = &[
    "Anna", "Johann", "Maria", "Peter", "Sophie", "Thomas", "Clara", "Lukas", "Emma", "Felix", "Hannah", "Jonas", "Lea",
    "Paul", "Marie", "Elias", "Laura", "David", "Julia", "Simon", "Sarah", "Daniel", "Lisa", "Michael", "Katharina",
    "James", "Olivia", "William", "Charlotte", "Henry", "Amelia", "George", "Isabella", "Samuel", "Grace", "Oliver",
    "Chloé", "Louis", "Camille", "Hugo", "Léa", "Mathilde", "Étienne", "Giulia", "Marco", "Francesca", "Luca",
    "Sofia", "Alessandro", "Ingrid", "Lars", "Astrid", "Nils", "Freya", "Mateo", "Lucía", "Diego", "Carmen", "Pablo",
    "Aiko", "Kenji", "Yuki", "Mei", "Wei", "Ananya", "Rohan", "Priya", "Omar", "Leila", "Amara", "Kwame", "Zofia",
    "Tomasz", "Agnieszka", "Jan", "Eva", "Viktor", "Irina", "Dmitri", "Nadia", "Fatima", "Yusuf", "Helena", "Rafael",
];

pub const LAST_NAMES: &[&str] = &[
    "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz", "Hoffmann", "Koch",
    "Richter", "Klein", "Wolf", "Schröder", "Neumann", "Schwarz", "Zimmermann", "Braun", "Krüger", "Hartmann", "Lange",
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson", "Anderson", "Taylor", "Thomas",
    "Moore", "Martin", "Thompson", "White", "Harris", "Clark", "Lewis", "Walker", "Hall", "Young", "King", "Wright",
    "Dubois", "Lefèvre", "Moreau", "Laurent", "Girard", "Bonnet", "Dupont", "Lambert", "Fontaine", "Rousseau",
    "Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci", "Marino", "Greco", "Bruno",
    "García", "Fernández", "López", "Martínez", "Sánchez", "Pérez", "Gómez", "Ruiz", "Jansen", "de Vries", "van Dijk",
    "Bakker", "Visser", "Nielsen", "Hansen", "Andersson", "Johansson", "Lindqvist", "Kowalski", "Nowak", "Wiśniewski",
    "Novák", "Horváth", "Tanaka", "Suzuki", "Watanabe", "Chen", "Wang", "Li", "Nakamura", "Okafor", "Mensah", "Haddad",
];

pub const PLACES: &[&str] = &[
    "Vienna", "Berlin", "Munich", "Hamburg", "Leipzig", "Dresden", "Cologne", "Paris", "Lyon", "Marseille", "Rome",
    "Florence", "Venice", "Naples", "Milan", "Madrid", "Seville", "Barcelona", "Lisbon", "London", "Edinburgh",
    "Dublin", "Amsterdam", "Antwerp", "Bruges", "Copenhagen", "Stockholm", "Oslo", "Kraków", "Prague", "Budapest",
    "Trieste", "Salzburg", "Zurich", "Basel", "Geneva", "New York", "Boston", "Philadelphia", "Chicago", "San Francisco",
    "Montreal", "Kyoto", "Edo", "Nagasaki", "Canton", "Delft", "Meissen", "Nuremberg", "Augsburg", "Limoges", "Sèvres",
    "the Rhine valley", "the Black Forest", "Lake Constance", "the Dalmatian coast", "the Bay of Naples", "Brittany",
];

const ADJECTIVES: &[&str] = &[
    "Small", "Large", "Early", "Late", "Blue", "Red", "Golden", "Silver", "Winter", "Summer", "Evening", "Morning",
    "Quiet", "Stormy", "Ornamental", "Decorated", "Painted", "Carved", "Engraved", "Gilded", "Lacquered", "Glazed",
];

const SUBJECTS: &[&str] = &[
    "Landscape", "River Landscape", "Harbour", "Still Life with Flowers", "Still Life with Fruit", "Interior", "Street Scene",
    "Market Square", "Mountain Village", "Seascape", "Garden", "Courtyard", "Church Interior", "Bridge", "Windmill",
    "Forest Path", "Cityscape", "Procession", "Dance", "Harvest", "Skaters on a Frozen Canal", "Shipwreck", "Ruins",
];

const OBJECT_NOUNS: &[&str] = &[
    "vase", "bowl", "teapot", "jug", "plate", "tureen", "candlestick", "chalice", "snuff box", "pocket watch", "fan",
    "brooch", "locket", "inkstand", "mirror", "chest", "writing desk", "chair", "clock", "sampler", "quilt", "shawl",
    "christening gown", "coffee pot", "figurine", "medal", "coin", "seal", "sword", "helmet", "map", "globe", "compass",
    "sextant", "microscope", "camera", "gramophone", "typewriter", "poster", "banner", "tile", "lamp", "doll", "toy train",
];

pub const MATERIALS: &[&str] = &[
    "oil on canvas", "oil on panel", "watercolour on paper", "gouache", "pencil on paper", "charcoal", "etching",
    "lithograph", "woodcut", "albumen print", "gelatin silver print", "cyanotype", "porcelain", "earthenware",
    "stoneware", "faience", "bronze", "brass", "pewter", "silver", "gold", "oak", "walnut", "mahogany", "ivory",
    "bone", "glass", "silk", "linen", "wool", "cotton", "leather", "parchment", "marble", "alabaster", "terracotta",
];

const TECHNIQUES: &[&str] = &[
    "hand-painted", "wheel-thrown", "cast and chased", "hand-stitched", "mould-blown", "carved in relief",
    "printed in colours", "engraved", "inlaid with mother-of-pearl", "decorated in underglaze blue", "embroidered",
];

const CONDITIONS: &[&str] = &[
    "Good overall condition with minor surface dirt.",
    "Small losses to the paint layer along the lower edge; old retouching visible under UV.",
    "Hairline crack to the rim, stable; a chip to the foot rim.",
    "Foxing throughout; the sheet is slightly cockled and has a repaired tear at the upper left.",
    "Light fading of the dyes on the exposed side; some moth damage to the border.",
    "Varnish discoloured; craquelure throughout, no lifting.",
    "The mechanism is complete but not working; the dial is scratched.",
    "Surface abrasion and a dent on the reverse; original patina largely preserved.",
    "Stable. Cleaned and consolidated in 2011 (see conservation report).",
];

const SENTENCES: &[&str] = &[
    "The {noun} is {technique} and shows {subject} framed by a border of scrolling foliage.",
    "It was made in {place} around {year} and is typical of the workshop production of the period.",
    "A label on the reverse, partly torn, reads \"{name}, {place}\".",
    "The composition follows a print by {name} published in {place} in {year}.",
    "Comparable examples are held by the museums of {place} and {place2}.",
    "The piece was exhibited in {place} in {year} and is recorded in the exhibition catalogue under no. {n}.",
    "Traces of an earlier inventory number, {n}, are painted in red on the base.",
    "The colours are unusually well preserved, with the original {material} still visible at the edges.",
    "Its form derives from {material} prototypes that reached {place} through the trade with {place2}.",
    "According to family tradition it was a wedding gift to {name} in {year}.",
    "The maker's mark, a crowned monogram, is struck twice near the rim.",
    "Research by {name} ({year}) attributes the design to a workshop active in {place}.",
    "The reverse carries a stamped inscription and the date {year}.",
    "Dimensions were recorded when the object was rehoused in {year2}.",
    "The object was photographed for the online collection in {year2}; the images show it before cleaning.",
    "Small details, such as the {material} fittings, suggest a date in the second quarter of the century.",
    "It belongs to a group of {n} related objects acquired together.",
];

const PROVENANCE: &[&str] = &[
    "{name}, {place}, until {year}; by descent to {name2}; from whom acquired by the museum, {year2}.",
    "Purchased at auction, {place}, {year} (lot {n}); private collection, {place2}; gift of {name}, {year2}.",
    "Collection of {name}, {place}; sold to the dealer {name2}, {year}; acquired {year2}.",
    "Bequest of {name}, {year2}. Previously in the collection of her father, {name2}, {place}.",
    "Field collection by {name} during an expedition to {place}, {year}; transferred from the university, {year2}.",
];

const INSCRIPTIONS: &[&str] = &[
    "Signed and dated lower right: {initials} {year}",
    "Inscribed on the reverse in pencil: \"{place}, {year}\"",
    "Stamped on the base: {initials} and the numeral {n}",
    "Monogrammed {initials} on the lid",
    "Label on the stretcher: \"Exhibited {place} {year}\"",
    "Engraved: \"To {name} from his friends, {year}\"",
];

const CREDIT: &[&str] = &[
    "Gift of {name}, {year2}", "Purchased with funds from the Friends of the Museum, {year2}", "Bequest of {name}, {year2}",
    "Transfer from the City Archive, {year2}", "Acquired with the support of the State Cultural Foundation, {year2}",
    "On long-term loan from a private collection", "Museum purchase, {year2}",
];

const UA: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:131.0) Gecko/20100101 Firefox/131.0",
    "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36 Edg/129.0.0.0",
];

/// Picks one element.
pub fn pick<'a, R: Rng>(rng: &mut R, list: &[&'a str]) -> &'a str {
    list.choose(rng).copied().unwrap_or("")
}

/// A person's full name.
pub fn person<R: Rng>(rng: &mut R) -> String {
    format!("{} {}", pick(rng, FIRST_NAMES), pick(rng, LAST_NAMES))
}

/// Lower-case ASCII version of a name part, for user names and e-mail addresses.
pub fn ascii_slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let mapped = match c {
            'ä' | 'á' | 'à' | 'â' => "a",
            'ö' | 'ó' | 'ò' | 'ô' => "o",
            'ü' | 'ú' | 'ù' | 'û' => "u",
            'é' | 'è' | 'ê' | 'É' => "e",
            'í' | 'ì' => "i",
            'ß' => "ss",
            'ç' => "c",
            'ñ' => "n",
            'ś' => "s",
            'ł' => "l",
            c if c.is_ascii_alphanumeric() => {
                out.push(c.to_ascii_lowercase());
                continue;
            }
            _ => "",
        };
        out.push_str(mapped);
    }
    out
}

fn fill<R: Rng>(rng: &mut R, template: &str, year: i32) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('}') else { break };
        let key = &rest[start + 1..start + end];
        match key {
            "noun" => out.push_str(pick(rng, OBJECT_NOUNS)),
            "technique" => out.push_str(pick(rng, TECHNIQUES)),
            "subject" => out.push_str(&pick(rng, SUBJECTS).to_lowercase()),
            "place" | "place2" => out.push_str(pick(rng, PLACES)),
            "material" => out.push_str(pick(rng, MATERIALS)),
            "name" | "name2" => out.push_str(&person(rng)),
            "year" => out.push_str(&(year + rng.gen_range(-3..=3)).to_string()),
            "year2" => out.push_str(&rng.gen_range(1950..=2024).to_string()),
            "n" => out.push_str(&rng.gen_range(2..400).to_string()),
            "initials" => {
                let a = pick(rng, FIRST_NAMES).chars().next().unwrap_or('A');
                let b = pick(rng, LAST_NAMES).chars().next().unwrap_or('B');
                out.push(a);
                out.push('.');
                out.push(b);
                out.push('.');
            }
            other => out.push_str(other),
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out
}

/// A year of making for an object.
pub fn year<R: Rng>(rng: &mut R) -> i32 {
    match rng.gen_range(0..10) {
        0 => rng.gen_range(1500..1700),
        1..=3 => rng.gen_range(1700..1850),
        4..=7 => rng.gen_range(1850..1950),
        _ => rng.gen_range(1950..2020),
    }
}

/// An object title.
pub fn title<R: Rng>(rng: &mut R, year: i32) -> String {
    match rng.gen_range(0..12) {
        0 => format!("Portrait of {}", person(rng)),
        1 => format!("{} {}", pick(rng, ADJECTIVES), pick(rng, SUBJECTS)),
        2 => format!("View of {}", pick(rng, PLACES)),
        3 => format!("{} near {}", pick(rng, SUBJECTS), pick(rng, PLACES)),
        4 => format!("Untitled ({})", pick(rng, MATERIALS)),
        5 => format!("Letter from {} to {}, {}", person(rng), person(rng), year),
        6 => {
            let noun = pick(rng, OBJECT_NOUNS);
            let mut t = format!("{} {}", pick(rng, ADJECTIVES), noun);
            if rng.gen_bool(0.5) {
                t.push_str(&format!(" with {} decoration", pick(rng, &["floral", "figural", "geometric", "armorial", "landscape"])));
            }
            t
        }
        7 => format!("Photograph of {} ({})", pick(rng, PLACES), year),
        8 => format!("{} {}, {}", capitalize(pick(rng, OBJECT_NOUNS)), pick(rng, &["from", "made in", "probably"]), pick(rng, PLACES)),
        9 => format!("Study for \"{}\"", pick(rng, SUBJECTS)),
        10 => format!("{} of {}", pick(rng, &["Album", "Sketchbook", "Diary", "Ledger", "Scrapbook"]), person(rng)),
        _ => format!("{} — {}", pick(rng, SUBJECTS), pick(rng, PLACES)),
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// The sortable form CA stores in `name_sort`: lower case, leading article dropped, 255 max.
pub fn sort_key(title: &str) -> String {
    let lower = title.to_lowercase();
    let trimmed = ["the ", "a ", "an ", "der ", "die ", "das "].iter().fold(lower.as_str(), |t, art| t.strip_prefix(art).unwrap_or(t));
    trimmed.chars().filter(|c| !matches!(c, '"' | '(' | ')' | '—')).take(255).collect()
}

/// A catalogue description of `sentences` sentences, in paragraphs.
pub fn description<R: Rng>(rng: &mut R, year: i32, sentences: usize) -> String {
    let mut out = String::new();
    for i in 0..sentences {
        if i > 0 {
            out.push_str(if i % 4 == 0 { "\n\n" } else { " " });
        }
        let t = pick(rng, SENTENCES);
        out.push_str(&fill(rng, t, year));
    }
    out
}

/// A provenance statement.
pub fn provenance<R: Rng>(rng: &mut R, year: i32) -> String {
    let t = pick(rng, PROVENANCE);
    fill(rng, t, year)
}

/// An inscription or mark.
pub fn inscription<R: Rng>(rng: &mut R, year: i32) -> String {
    let t = pick(rng, INSCRIPTIONS);
    fill(rng, t, year)
}

/// A credit line.
pub fn credit_line<R: Rng>(rng: &mut R) -> String {
    let t = pick(rng, CREDIT);
    fill(rng, t, 2000)
}

/// A condition note.
pub fn condition<R: Rng>(rng: &mut R) -> String {
    pick(rng, CONDITIONS).to_string()
}

/// A browser user agent.
pub fn user_agent<R: Rng>(rng: &mut R) -> &'static str {
    UA[rng.gen_range(0..UA.len())]
}

/// A client IP address (office networks mostly, some home connections).
pub fn ip<R: Rng>(rng: &mut R) -> String {
    match rng.gen_range(0..4) {
        0 | 1 => format!("10.{}.{}.{}", rng.gen_range(0..4), rng.gen_range(0..255), rng.gen_range(2..254)),
        2 => format!("192.0.2.{}", rng.gen_range(2..254)),
        _ => format!("198.51.100.{}", rng.gen_range(2..254)),
    }
}

/// A random 32-character lower-case hex string.
pub fn hex32<R: Rng>(rng: &mut R) -> String {
    let b: [u8; 16] = rng.r#gen();
    hex::encode(b)
}

/// A bcrypt-looking password hash, `$2y$10$` + 53 characters, as PHP's `password_hash()` writes.
pub fn password_hash<R: Rng>(rng: &mut R) -> String {
    const ALPHA: &[u8] = b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut s = String::from("$2y$10$");
    for _ in 0..53 {
        s.push(ALPHA[rng.gen_range(0..ALPHA.len())] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn texts_look_right() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let d = description(&mut rng, 1890, 6);
        assert!(d.len() > 200 && !d.contains('{'), "{d}");
        assert!(!provenance(&mut rng, 1890).contains('{'));
        assert_eq!(password_hash(&mut rng).len(), 60);
        assert_eq!(sort_key("The \"Blue\" Vase"), "blue vase");
        assert_eq!(ascii_slug("Müller-Lüdenscheidt"), "mullerludenscheidt");
    }
}
