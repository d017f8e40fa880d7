//! The database rows of a tenant: reference data (locales, lists, metadata elements, roles),
//! users, catalogued objects with labels and attributes, representations, the event log,
//! web sessions, the change log and GUIDs.

use std::collections::HashSet;
use std::io::Write;

use anyhow::Result;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::media::{OriginalKind, Upload, UploadPlan};
use crate::php::Php;
use crate::sql::{Row, SqlWriter};
use crate::text;

/// CA table numbers (`app/conf/datamodel.conf`).
pub mod table_num {
    pub const ATTRIBUTE_VALUES: u8 = 3;
    pub const ATTRIBUTES: u8 = 4;
    pub const OBJECT_LABELS: u8 = 50;
    pub const OBJECT_REPRESENTATIONS: u8 = 56;
    pub const OBJECTS: u8 = 57;
    pub const OBJECTS_X_OBJECT_REPRESENTATIONS: u8 = 61;
    pub const USERS: u8 = 94;
}

pub const LOCALE_EN: u16 = 1;
pub const LOCALE_DE: u16 = 2;

/// CA attribute datatypes.
mod datatype {
    pub const CONTAINER: u8 = 0;
    pub const TEXT: u8 = 1;
    pub const DATERANGE: u8 = 2;
    pub const LIST: u8 = 3;
    pub const LENGTH: u8 = 8;
}

/// Metadata element ids (fixed: every tenant made here has the same ones).
pub mod element {
    pub const DESCRIPTION: u16 = 1;
    pub const DATE: u16 = 2;
    pub const DIMENSIONS: u16 = 3;
    pub const DIMENSIONS_HEIGHT: u16 = 4;
    pub const DIMENSIONS_WIDTH: u16 = 5;
    pub const DIMENSIONS_DEPTH: u16 = 6;
    pub const MATERIALS: u16 = 7;
    pub const INSCRIPTION: u16 = 8;
    pub const CREDIT_LINE: u16 = 9;
    pub const PROVENANCE: u16 = 10;
    pub const CONDITION: u16 = 11;
    /// Elements whose values are free text.
    pub const TEXT: &[u16] = &[DESCRIPTION, INSCRIPTION, CREDIT_LINE, PROVENANCE, CONDITION];
}

struct ListDef {
    code: &'static str,
    hierarchical: bool,
    system: bool,
    en: &'static str,
    de: &'static str,
    /// (idno, English, German)
    items: &'static [(&'static str, &'static str, &'static str)],
}

const LISTS: &[ListDef] = &[
    ListDef {
        code: "object_types",
        hierarchical: true,
        system: true,
        en: "Object types",
        de: "Objekttypen",
        items: &[
            ("artwork", "Artwork", "Kunstwerk"),
            ("photograph", "Photograph", "Fotografie"),
            ("document", "Document", "Dokument"),
            ("book", "Book", "Buch"),
            ("textile", "Textile", "Textil"),
            ("ceramic", "Ceramic", "Keramik"),
            ("furniture", "Furniture", "Möbel"),
            ("metalwork", "Metalwork", "Metallarbeit"),
            ("numismatic", "Coin or medal", "Münze oder Medaille"),
            ("specimen", "Natural history specimen", "Naturkundliches Präparat"),
            ("print", "Print", "Druckgrafik"),
            ("drawing", "Drawing", "Zeichnung"),
            ("sculpture", "Sculpture", "Skulptur"),
        ],
    },
    ListDef {
        code: "object_representation_types",
        hierarchical: true,
        system: true,
        en: "Object representation types",
        de: "Medientypen",
        items: &[
            ("front", "Front", "Vorderseite"),
            ("back", "Back", "Rückseite"),
            ("detail", "Detail", "Detail"),
            ("documentation", "Documentation", "Dokumentation"),
            ("archival_scan", "Archival scan", "Archivscan"),
        ],
    },
    ListDef {
        code: "object_label_types",
        hierarchical: false,
        system: true,
        en: "Object label types",
        de: "Titeltypen",
        items: &[
            ("alt", "Alternate title", "Alternativer Titel"),
            ("translated", "Translated title", "Übersetzter Titel"),
            ("former", "Former title", "Früherer Titel"),
        ],
    },
    ListDef {
        code: "object_acquisition_types",
        hierarchical: false,
        system: false,
        en: "Acquisition methods",
        de: "Erwerbungsarten",
        items: &[
            ("gift", "Gift", "Schenkung"),
            ("purchase", "Purchase", "Ankauf"),
            ("bequest", "Bequest", "Vermächtnis"),
            ("transfer", "Transfer", "Überweisung"),
            ("field_collection", "Field collection", "Feldsammlung"),
            ("exchange", "Exchange", "Tausch"),
        ],
    },
    ListDef {
        code: "object_statuses",
        hierarchical: false,
        system: false,
        en: "Object statuses",
        de: "Objektstatus",
        items: &[
            ("accessioned", "Accessioned", "Inventarisiert"),
            ("on_view", "On view", "Ausgestellt"),
            ("in_storage", "In storage", "Im Depot"),
            ("on_loan", "On loan", "Verliehen"),
            ("in_conservation", "In conservation", "In Restaurierung"),
            ("deaccessioned", "Deaccessioned", "Ausgesondert"),
        ],
    },
    ListDef {
        code: "materials",
        hierarchical: true,
        system: false,
        en: "Materials",
        de: "Materialien",
        items: &[
            ("oil_paint", "Oil paint", "Ölfarbe"),
            ("canvas", "Canvas", "Leinwand"),
            ("paper", "Paper", "Papier"),
            ("watercolour", "Watercolour", "Aquarell"),
            ("porcelain", "Porcelain", "Porzellan"),
            ("earthenware", "Earthenware", "Irdenware"),
            ("bronze", "Bronze", "Bronze"),
            ("silver", "Silver", "Silber"),
            ("gold", "Gold", "Gold"),
            ("oak", "Oak", "Eiche"),
            ("walnut", "Walnut", "Nussbaum"),
            ("glass", "Glass", "Glas"),
            ("silk", "Silk", "Seide"),
            ("linen", "Linen", "Leinen"),
            ("wool", "Wool", "Wolle"),
            ("leather", "Leather", "Leder"),
            ("parchment", "Parchment", "Pergament"),
            ("marble", "Marble", "Marmor"),
            ("gelatin_silver", "Gelatin silver", "Silbergelatine"),
            ("albumen", "Albumen", "Albumin"),
        ],
    },
    ListDef {
        code: "access_statuses",
        hierarchical: false,
        system: true,
        en: "Access statuses",
        de: "Zugriffsstatus",
        items: &[
            ("not_accessible", "Not accessible to public", "Nicht öffentlich"),
            ("accessible", "Accessible to public", "Öffentlich"),
            ("restricted", "Restricted access", "Eingeschränkt"),
        ],
    },
    ListDef {
        code: "workflow_statuses",
        hierarchical: false,
        system: true,
        en: "Workflow statuses",
        de: "Bearbeitungsstatus",
        items: &[
            ("new", "New", "Neu"),
            ("edit", "Editing in progress", "In Bearbeitung"),
            ("review", "Awaiting review", "Zur Prüfung"),
            ("completed", "Completed", "Abgeschlossen"),
        ],
    },
];

/// The list item ids of one list (root first), assigned in [`LISTS`] order from 1.
#[derive(Clone, Debug)]
pub struct ListIds {
    pub list_id: u16,
    pub root: Option<u32>,
    pub items: Vec<u32>,
}

/// Ids of the reference data every tenant made here has.
#[derive(Clone, Debug)]
pub struct Catalog {
    pub lists: Vec<ListIds>,
}

impl Catalog {
    /// The standard reference data.
    pub fn standard() -> Catalog {
        let mut next = 1u32;
        let mut lists = Vec::new();
        for (i, l) in LISTS.iter().enumerate() {
            let root = if l.hierarchical {
                next += 1;
                Some(next - 1)
            } else {
                None
            };
            let items = (0..l.items.len()).map(|k| next + k as u32).collect();
            next += l.items.len() as u32;
            lists.push(ListIds { list_id: i as u16 + 1, root, items });
        }
        Catalog { lists }
    }
    fn list(&self, code: &str) -> &ListIds {
        let i = LISTS.iter().position(|l| l.code == code).unwrap_or(0);
        &self.lists[i]
    }
    pub fn object_types(&self) -> &[u32] {
        &self.list("object_types").items
    }
    pub fn representation_types(&self) -> &[u32] {
        &self.list("object_representation_types").items
    }
    pub fn label_types(&self) -> &[u32] {
        &self.list("object_label_types").items
    }
    pub fn acquisition_types(&self) -> &[u32] {
        &self.list("object_acquisition_types").items
    }
    pub fn statuses(&self) -> &[u32] {
        &self.list("object_statuses").items
    }
    pub fn materials(&self) -> &[u32] {
        &self.list("materials").items
    }
    pub fn materials_list_id(&self) -> u16 {
        self.list("materials").list_id
    }
}

/// Formats an f64 as a SQL decimal literal.
fn dec(x: f64, places: usize) -> String {
    format!("{x:.places$}")
}

/// CA's historic date encoding, `YYYY.MMDDhhmmss` (as a decimal literal with 20 places).
fn historic(year: i32, end: bool) -> String {
    if end { format!("{year}.12312359590000000000") } else { format!("{year}.01010000000000000000") }
}

/// Writes locales, lists and their items, metadata elements, roles and groups.
pub fn write_reference<W: Write>(w: &mut SqlWriter<W>, cat: &Catalog) -> Result<()> {
    let mut ins = w.insert("ca_locales", &["locale_id", "name", "language", "country", "dialect", "dont_use_for_cataloguing"]);
    ins.row(Row::new().int(LOCALE_EN).str("English").str("en").str("US").null().int(0))?;
    ins.row(Row::new().int(LOCALE_DE).str("German").str("de").str("DE").null().int(0))?;
    ins.row(Row::new().int(3).str("French").str("fr").str("FR").null().int(1))?;
    ins.finish()?;

    let mut ins = w.insert("ca_lists", &["list_id", "list_code", "is_system_list", "is_hierarchical", "use_as_vocabulary", "default_sort", "deleted"]);
    for (l, ids) in LISTS.iter().zip(&cat.lists) {
        ins.row(Row::new().int(ids.list_id).str(l.code).int(l.system as u8).int(l.hierarchical as u8).int((l.code == "materials") as u8).int(0).int(0))?;
    }
    ins.finish()?;
    let mut ins = w.insert("ca_list_labels", &["list_id", "locale_id", "name"]);
    for (l, ids) in LISTS.iter().zip(&cat.lists) {
        ins.row(Row::new().int(ids.list_id).int(LOCALE_EN).str(l.en))?;
        ins.row(Row::new().int(ids.list_id).int(LOCALE_DE).str(l.de))?;
    }
    ins.finish()?;

    let cols = [
        "item_id", "parent_id", "list_id", "type_id", "idno", "idno_sort", "idno_sort_num", "item_value", "rank", "hier_left",
        "hier_right", "is_enabled", "is_default", "validation_format", "settings", "color", "icon", "access", "status", "deleted",
        "source_id", "source_info",
    ];
    let mut ins = w.insert("ca_list_items", &cols);
    let mut labels = Vec::new();
    for (l, ids) in LISTS.iter().zip(&cat.lists) {
        let n = l.items.len() as f64;
        if let Some(root) = ids.root {
            let name = format!("Root node for {}", l.code);
            ins.row(
                Row::new().int(root).null().int(ids.list_id).null().str(&name).str(&name).int(0).str(&name).int(0).raw("1").raw(&dec(n + 2.0, 20)).int(0).int(0).str("").str("a:0:{}").null().bin(b"").int(0).int(0).int(0).null().str(""),
            )?;
        }
        for (k, (&id, (idno, en, de))) in ids.items.iter().zip(l.items).enumerate() {
            let left = k as f64 + 2.0;
            ins.row(
                Row::new()
                    .int(id)
                    .opt_int(ids.root)
                    .int(ids.list_id)
                    .null()
                    .str(idno)
                    .str(idno)
                    .int(0)
                    .str(idno)
                    .int(k as u32 + 1)
                    .raw(&dec(left, 20))
                    .raw(&dec(left + 0.5, 20))
                    .int(1)
                    .int((k == 0) as u8)
                    .str("")
                    .str("a:0:{}")
                    .null()
                    .bin(b"")
                    .int(1)
                    .int(0)
                    .int(0)
                    .null()
                    .str(""),
            )?;
            labels.push((id, *en, LOCALE_EN));
            labels.push((id, *de, LOCALE_DE));
        }
    }
    ins.finish()?;
    let mut ins = w.insert("ca_list_item_labels", &["item_id", "locale_id", "type_id", "name_singular", "name_plural", "name_sort", "description", "source_info", "is_preferred", "access"]);
    for (id, name, locale) in labels {
        let plural = if locale == LOCALE_EN && !name.ends_with('s') { format!("{name}s") } else { name.to_string() };
        ins.row(Row::new().int(id).int(locale).null().str(name).str(&plural).str(&name.to_lowercase()).str("").str("").int(1).int(0))?;
    }
    ins.finish()?;

    // Metadata elements: (id, parent, code, datatype, list, en, de)
    let materials_list = cat.materials_list_id();
    type ElementDef<'a> = (u16, Option<u16>, &'a str, u8, Option<u16>, &'a str, &'a str);
    let elements: &[ElementDef] = &[
        (element::DESCRIPTION, None, "description", datatype::TEXT, None, "Description", "Beschreibung"),
        (element::DATE, None, "date", datatype::DATERANGE, None, "Date", "Datierung"),
        (element::DIMENSIONS, None, "dimensions", datatype::CONTAINER, None, "Dimensions", "Maße"),
        (element::DIMENSIONS_HEIGHT, Some(element::DIMENSIONS), "dimensions_height", datatype::LENGTH, None, "Height", "Höhe"),
        (element::DIMENSIONS_WIDTH, Some(element::DIMENSIONS), "dimensions_width", datatype::LENGTH, None, "Width", "Breite"),
        (element::DIMENSIONS_DEPTH, Some(element::DIMENSIONS), "dimensions_depth", datatype::LENGTH, None, "Depth", "Tiefe"),
        (element::MATERIALS, None, "materials", datatype::LIST, Some(materials_list), "Materials", "Material"),
        (element::INSCRIPTION, None, "inscription", datatype::TEXT, None, "Inscriptions and marks", "Inschriften und Marken"),
        (element::CREDIT_LINE, None, "credit_line", datatype::TEXT, None, "Credit line", "Creditline"),
        (element::PROVENANCE, None, "provenance", datatype::TEXT, None, "Provenance", "Provenienz"),
        (element::CONDITION, None, "condition_note", datatype::TEXT, None, "Condition", "Zustand"),
    ];
    let mut ins = w.insert("ca_metadata_elements", &["element_id", "parent_id", "list_id", "element_code", "documentation_url", "datatype", "settings", "rank", "deleted", "hier_left", "hier_right", "hier_element_id"]);
    for (rank, &(id, parent, code, dt, list, _, _)) in elements.iter().enumerate() {
        let settings = element_settings(dt);
        let (left, right) = match (id, parent) {
            (element::DIMENSIONS, _) => (1.0, 8.0),
            (_, Some(_)) => (2.0 * f64::from(id - element::DIMENSIONS), 2.0 * f64::from(id - element::DIMENSIONS) + 1.0),
            _ => (1.0, 2.0),
        };
        ins.row(
            Row::new()
                .int(id)
                .opt_int(parent)
                .opt_int(list)
                .str(code)
                .str("")
                .int(dt)
                .str(&settings)
                .int(rank as u32 + 1)
                .int(0)
                .raw(&dec(left, 20))
                .raw(&dec(right, 20))
                .int(parent.unwrap_or(id)),
        )?;
    }
    ins.finish()?;
    let mut ins = w.insert("ca_metadata_element_labels", &["element_id", "locale_id", "name", "description", "is_preferred"]);
    for &(id, _, _, _, _, en, de) in elements {
        ins.row(Row::new().int(id).int(LOCALE_EN).str(en).str("").int(1))?;
        ins.row(Row::new().int(id).int(LOCALE_DE).str(de).str("").int(1))?;
    }
    ins.finish()?;
    let mut ins = w.insert("ca_metadata_type_restrictions", &["table_num", "type_id", "element_id", "settings", "include_subtypes", "rank"]);
    for (rank, &(id, parent, ..)) in elements.iter().enumerate() {
        if parent.is_some() {
            continue;
        }
        let max = if id == element::MATERIALS || id == element::INSCRIPTION { 10 } else { 1 };
        let s = String::from_utf8_lossy(&crate::php::serialize(&Php::assoc([
            ("minAttributesPerRow", Php::Int(0)),
            ("maxAttributesPerRow", Php::Int(max)),
            ("minimumAttributeBundlesToDisplay", Php::Int(1)),
        ])))
        .into_owned();
        ins.row(Row::new().int(table_num::OBJECTS).null().int(id).str(&s).int(0).int(rank as u32))?;
    }
    ins.finish()?;

    let roles: &[(&str, &str, &str, &[&str])] = &[
        ("Administrator", "admin", "Full access to all functions", &["can_configure_system", "can_manage_users", "can_edit_ca_objects", "can_delete_ca_objects", "can_use_media_import_plugin"]),
        ("Cataloguer", "cataloguer", "Creates and edits catalogue records", &["can_edit_ca_objects", "can_create_ca_objects", "can_use_media_import_plugin", "can_search_ca_objects"]),
        ("Viewer", "viewer", "Read-only access", &["can_search_ca_objects", "can_browse_ca_objects"]),
    ];
    let mut ins = w.insert("ca_user_roles", &["role_id", "name", "code", "description", "rank", "vars", "field_access"]);
    for (i, (name, code, desc, actions)) in roles.iter().enumerate() {
        let vars = Php::assoc([("actions", Php::assoc(actions.iter().map(|a| (a.to_string(), Php::Int(1)))))]);
        ins.row(Row::new().int(i as u32 + 1).str(name).str(code).str(desc).int(i as u32).str(&String::from_utf8_lossy(&crate::php::serialize(&vars))).str("a:0:{}"))?;
    }
    ins.finish()?;
    let mut ins = w.insert("ca_user_groups", &["group_id", "parent_id", "name", "code", "description", "for_public_use", "user_id", "rank", "vars", "hier_left", "hier_right"]);
    ins.row(Row::new().int(1).null().str("Collections staff").str("staff").str("Curatorial and registrar staff").int(0).null().int(0).str("a:0:{}").raw("1").raw("2"))?;
    ins.row(Row::new().int(2).null().str("Volunteers").str("volunteers").str("Volunteer cataloguers").int(0).null().int(1).str("a:0:{}").raw("3").raw("4"))?;
    ins.finish()?;
    Ok(())
}

fn element_settings(dt: u8) -> String {
    let v = match dt {
        datatype::TEXT => Php::assoc([
            ("minChars", Php::Int(0)),
            ("maxChars", Php::Int(65535)),
            ("fieldWidth", Php::Int(60)),
            ("fieldHeight", Php::Int(6)),
            ("usewysiwygeditor", Php::Int(0)),
            ("doesNotTakeLocale", Php::Int(0)),
            ("canBeUsedInSort", Php::Int(1)),
            ("canBeUsedInSearchForm", Php::Int(1)),
            ("canBeUsedInDisplay", Php::Int(1)),
        ]),
        datatype::DATERANGE => Php::assoc([
            ("fieldWidth", Php::Int(40)),
            ("fieldHeight", Php::Int(1)),
            ("dateRangeBoundaries", "".into()),
            ("isLifespan", Php::Int(0)),
            ("canBeUsedInSort", Php::Int(1)),
        ]),
        datatype::LENGTH => Php::assoc([("fieldWidth", Php::Int(10)), ("requireValue", Php::Int(0))]),
        datatype::LIST => Php::assoc([("listWidth", Php::Int(40)), ("render", "select".into()), ("requireValue", Php::Int(0))]),
        _ => Php::assoc([("lineBreakAfterNumberOfElements", Php::Int(3)), ("doesNotTakeLocale", Php::Int(1))]),
    };
    String::from_utf8_lossy(&crate::php::serialize(&v)).into_owned()
}

// ------------------------------------------------------------------------------------------
// Users

/// A user account.
#[derive(Clone, Debug)]
pub struct User {
    pub id: u32,
    pub user_name: String,
    pub userclass: u8,
    pub active: bool,
}

const DOMAINS: &[&str] = &["gmail.com", "outlook.com", "web.de", "gmx.net", "posteo.de", "proton.me", "yahoo.co.uk"];

/// Plans `n` users: user 1 is the administrator; the rest is mostly staff (userclass 0, a
/// fifth of them inactive), some public (1) and some deleted (255); every class appears when
/// `n >= 4`.
pub fn plan_users(rng: &mut StdRng, n: usize, app_name: &str) -> Vec<(User, String, String, String)> {
    let mut out = Vec::new();
    let mut names = HashSet::new();
    let domain = format!("{}.museum.example", app_name.trim_start_matches("tenant_"));
    for i in 0..n.max(1) {
        let (fname, lname) = (text::pick(rng, text::FIRST_NAMES).to_string(), text::pick(rng, text::LAST_NAMES).to_string());
        let (userclass, active) = match i {
            0 => (0, true),
            1 => (0, false),
            2 => (1, true),
            3 => (255, false),
            _ => match rng.gen_range(0..100) {
                0..=54 => (0, true),
                55..=67 => (0, false),
                68..=89 => (1, rng.gen_bool(0.9)),
                _ => (255, false),
            },
        };
        let base = if i == 0 { "administrator".to_string() } else { format!("{}{}", text::ascii_slug(&fname).chars().next().unwrap_or('x'), text::ascii_slug(&lname)) };
        let mut user_name = base.clone();
        let mut k = 2;
        while !names.insert(user_name.clone()) {
            user_name = format!("{base}{k}");
            k += 1;
        }
        let email = if userclass == 1 {
            format!("{}.{}@{}", text::ascii_slug(&fname), text::ascii_slug(&lname), text::pick(rng, DOMAINS))
        } else if i == 0 {
            format!("it@{domain}")
        } else {
            format!("{}.{}@{domain}", text::ascii_slug(&fname), text::ascii_slug(&lname))
        };
        out.push((User { id: i as u32 + 1, user_name, userclass, active }, fname, lname, email));
    }
    out
}

/// Writes the users, their roles and groups.
pub fn write_users<W: Write>(w: &mut SqlWriter<W>, rng: &mut StdRng, users: &[(User, String, String, String)], now: u64, history: u64) -> Result<()> {
    let cols = ["user_id", "user_name", "userclass", "password", "fname", "lname", "email", "sms_number", "vars", "volatile_vars", "active", "confirmed_on", "confirmation_key", "registered_on", "entity_id"];
    let mut ins = w.insert("ca_users", &cols);
    for (u, fname, lname, email) in users {
        let registered = now - history + (history / 2) * u64::from(u.id) / (users.len() as u64 + 1);
        let vars = Php::assoc([(
            "_user_preferences",
            Php::assoc([
                ("ui_locale", if rng.gen_bool(0.3) { "de_DE" } else { "en_US" }.into()),
                ("ui_show_breadcrumbs", Php::Int(1)),
                ("cataloguing_locale", "en_US".into()),
                ("clipboard_action", "copy".into()),
                ("quicksearch_result_display", Php::Int(rng.gen_range(5..30))),
            ]),
        )]);
        let last_login = now - rng.gen_range(0..history / 4);
        let volatile = Php::assoc([("last_login", last_login.into()), ("last_ip", text::ip(rng).into())]);
        let confirmed = u.userclass != 1 || rng.gen_bool(0.8);
        ins.row(
            Row::new()
                .int(u.id)
                .str(&u.user_name)
                .int(u.userclass)
                .str(&text::password_hash(rng))
                .str(fname)
                .str(lname)
                .str(email)
                .str("")
                .str(&String::from_utf8_lossy(&crate::php::serialize(&vars)))
                .str(&String::from_utf8_lossy(&crate::php::serialize(&volatile)))
                .int(u.active as u8)
                .opt_int(confirmed.then_some(registered + 3600))
                .opt_str((!confirmed).then(|| text::hex32(rng)).as_deref())
                .int(registered)
                .null(),
        )?;
    }
    ins.finish()?;
    let mut ins = w.insert("ca_users_x_roles", &["user_id", "role_id", "rank"]);
    for (u, ..) in users.iter().filter(|(u, ..)| u.userclass == 0) {
        let role: u8 = if u.id == 1 { 1 } else if rng.gen_bool(0.7) { 2 } else { 3 };
        ins.row(Row::new().int(u.id).int(role).int(0))?;
    }
    ins.finish()?;
    let mut ins = w.insert("ca_users_x_groups", &["user_id", "group_id"]);
    for (u, ..) in users.iter().filter(|(u, ..)| u.userclass == 0 && u.id != 1) {
        ins.row(Row::new().int(u.id).int(if rng.gen_bool(0.75) { 1u8 } else { 2 }))?;
    }
    ins.finish()?;
    Ok(())
}

// ------------------------------------------------------------------------------------------
// Objects

/// A catalogued object.
#[derive(Clone, Debug)]
pub struct Object {
    pub id: u32,
    pub idno: String,
    pub deleted: bool,
    pub created: u64,
}

/// Plans `n` objects with accession numbers like `2019.12.3`, created over `history` seconds
/// before `now`, ids in creation order.
pub fn plan_objects(rng: &mut StdRng, n: usize, now: u64, history: u64) -> Vec<Object> {
    let mut out = Vec::with_capacity(n);
    let first_year = 1960;
    let last_year = 2026;
    let span = (last_year - first_year + 1) as usize;
    let mut times: Vec<u64> = (0..n).map(|_| now - rng.gen_range(3600..history)).collect();
    times.sort_unstable();
    let mut i = 0;
    let mut acc = 0;
    while i < n {
        let year = first_year + ((i * span) / n.max(1)) as i32;
        acc = if out.last().map(|o: &Object| o.idno.starts_with(&format!("{year}."))).unwrap_or(false) { acc + 1 } else { 1 };
        let parts = rng.gen_range(1..=6).min(n - i);
        for p in 1..=parts {
            let idno = if parts == 1 { format!("{year}.{acc}") } else { format!("{year}.{acc}.{p}") };
            // A few deleted records (the row stays, deleted = 1); always at least one in 10+.
            let deleted = rng.gen_bool(0.03) || (n >= 10 && i == n * 2 / 3);
            out.push(Object { id: i as u32 + 1, idno, deleted, created: times[i] });
            i += 1;
        }
    }
    out
}

/// `idno_sort` as CA builds it: numeric parts zero-padded.
fn idno_sort(idno: &str) -> String {
    idno.split('.').map(|p| format!("{p:0>10}")).collect::<Vec<_>>().join(".")
}

fn idno_sort_num(idno: &str) -> i64 {
    let mut it = idno.split('.').map(|p| p.parse::<i64>().unwrap_or(0));
    let (a, b, c) = (it.next().unwrap_or(0), it.next().unwrap_or(0), it.next().unwrap_or(0));
    a * 1_000_000 + b * 1000 + c
}

/// Ids counters shared by the writers.
#[derive(Clone, Debug, Default)]
pub struct NextIds {
    pub label: u32,
    pub attribute: u32,
    pub value: u32,
    pub log: u64,
    pub guid: u32,
    pub rep_label: u32,
    pub relation: u32,
}

fn uuid<R: Rng>(rng: &mut R) -> String {
    let b: [u8; 16] = rng.r#gen();
    let h = hex::encode(b);
    format!("{}-{}-4{}-a{}-{}", &h[0..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
}

/// A change log entry to write.
struct LogEntry {
    time: u64,
    user: u32,
    kind: char,
    table: u8,
    row: u32,
    subject: u32,
    snapshot: Php,
}

/// Writes objects with their labels, attributes, change log entries and GUIDs.
pub fn write_objects<W: Write>(w: &mut SqlWriter<W>, rng: &mut StdRng, cat: &Catalog, objects: &[Object], staff: &[u32], ids: &mut NextIds) -> Result<()> {
    let mut logs: Vec<LogEntry> = Vec::new();
    let years: Vec<i32> = objects.iter().map(|_| text::year(rng)).collect();
    let titles: Vec<String> = objects.iter().zip(&years).map(|(_, &y)| text::title(rng, y)).collect();
    let pick_staff = |rng: &mut StdRng| staff.choose(rng).copied().unwrap_or(1);

    let cols = [
        "object_id", "parent_id", "locale_id", "type_id", "idno", "idno_sort", "idno_sort_num", "acquisition_type_id", "item_status_id",
        "source_info", "hier_object_id", "hier_left", "hier_right", "extent", "extent_units", "access", "status", "deleted", "rank",
        "view_count", "is_deaccessioned", "accession_sdatetime", "accession_edatetime", "deaccession_sdatetime", "deaccession_edatetime",
        "deaccession_notes", "deaccession_authorized_by",
    ];
    let mut ins = w.insert("ca_objects", &cols);
    let mut parent: Option<(u32, String)> = None;
    for (o, &year) in objects.iter().zip(&years) {
        // Multi-part accessions (2019.12.1, 2019.12.2, ...) hang under their first part.
        let acc: String = o.idno.rsplit_once('.').map(|x| x.0).unwrap_or("").to_string();
        let is_part = o.idno.matches('.').count() == 2;
        let parent_id = match (&parent, is_part) {
            (Some((pid, pacc)), true) if *pacc == acc && *pid != o.id => Some(*pid),
            _ => None,
        };
        if is_part && parent_id.is_none() {
            parent = Some((o.id, acc.clone()));
        } else if !is_part {
            parent = None;
        }
        let status_ids = cat.statuses();
        let status_idx = if rng.gen_bool(0.03) { status_ids.len() - 1 } else { rng.gen_range(0..status_ids.len() - 1) };
        let deaccessioned = status_idx == status_ids.len() - 1;
        let acc_year: i32 = o.idno.split('.').next().and_then(|y| y.parse().ok()).unwrap_or(2000);
        let source_info = Php::assoc([("import_batch", format!("batch_{}", o.created / 86400 / 30).into()), ("source_year", Php::Int(i64::from(year)))]);
        ins.row(
            Row::new()
                .int(o.id)
                .opt_int(parent_id)
                .int(LOCALE_EN)
                .int(*cat.object_types().choose(rng).unwrap_or(&1))
                .str(&o.idno)
                .str(&idno_sort(&o.idno))
                .int(idno_sort_num(&o.idno))
                .int(*cat.acquisition_types().choose(rng).unwrap_or(&1))
                .int(status_ids[status_idx])
                .str(&String::from_utf8_lossy(&crate::php::serialize(&source_info)))
                .int(parent_id.unwrap_or(o.id))
                .raw(&dec(f64::from(o.id), 20))
                .raw(&dec(f64::from(o.id) + 0.5, 20))
                .int(0)
                .str("")
                .int(rng.gen_bool(0.6) as u8)
                .int(rng.gen_range(0..4u8))
                .int(o.deleted as u8)
                .int(o.id)
                .int(rng.gen_range(0..500u32))
                .int(deaccessioned as u8)
                .raw(&historic(acc_year, false))
                .raw(&historic(acc_year, true))
                .raw(&if deaccessioned { historic(2015 + rng.gen_range(0..10), false) } else { "NULL".into() })
                .raw(&if deaccessioned { historic(2015 + rng.gen_range(0..10), true) } else { "NULL".into() })
                .str(&if deaccessioned { format!("Deaccessioned by decision of the board; {}", text::condition(rng)) } else { String::new() })
                .str(&if deaccessioned { text::person(rng) } else { String::new() }),
        )?;
        logs.push(LogEntry {
            time: o.created,
            user: pick_staff(rng),
            kind: 'I',
            table: table_num::OBJECTS,
            row: o.id,
            subject: o.id,
            snapshot: Php::assoc([
                ("idno", o.idno.clone().into()),
                ("type_id", Php::Int(1)),
                ("locale_id", Php::Int(i64::from(LOCALE_EN))),
                ("access", Php::Int(0)),
                ("status", Php::Int(0)),
                ("deleted", Php::Int(0)),
                ("source_info", "".into()),
            ]),
        });
        if rng.gen_bool(0.3) {
            logs.push(LogEntry {
                time: o.created + rng.gen_range(600..86400 * 90),
                user: pick_staff(rng),
                kind: 'U',
                table: table_num::OBJECTS,
                row: o.id,
                subject: o.id,
                snapshot: Php::assoc([("status", Php::Int(rng.gen_range(1..4))), ("access", Php::Int(1))]),
            });
        }
    }
    ins.finish()?;

    let mut ins = w.insert("ca_object_labels", &["label_id", "object_id", "locale_id", "type_id", "name", "name_sort", "source_info", "is_preferred", "access", "notes"]);
    for (o, title) in objects.iter().zip(&titles) {
        ids.label += 1;
        ins.row(Row::new().int(ids.label).int(o.id).int(LOCALE_EN).null().str(title).str(&text::sort_key(title)).str("").int(1).int(0).str(""))?;
        logs.push(LogEntry {
            time: o.created,
            user: pick_staff(rng),
            kind: 'I',
            table: table_num::OBJECT_LABELS,
            row: ids.label,
            subject: o.id,
            snapshot: Php::assoc([("name", title.clone().into()), ("locale_id", Php::Int(1)), ("is_preferred", Php::Int(1))]),
        });
        if rng.gen_bool(0.15) {
            ids.label += 1;
            let de = format!("{} (dt.)", title);
            ins.row(Row::new().int(ids.label).int(o.id).int(LOCALE_DE).null().str(&de).str(&text::sort_key(&de)).str("").int(1).int(0).str(""))?;
        }
        if rng.gen_bool(0.25) {
            ids.label += 1;
            let y = text::year(rng);
            let alt = text::title(rng, y);
            let note = if rng.gen_bool(0.3) { format!("Title used in the {} inventory", rng.gen_range(1900..2000)) } else { String::new() };
            ins.row(Row::new().int(ids.label).int(o.id).int(LOCALE_EN).int(*cat.label_types().choose(rng).unwrap_or(&1)).str(&alt).str(&text::sort_key(&alt)).str("").int(0).int(0).str(&note))?;
        }
    }
    ins.finish()?;

    // Attributes and their values.
    let mut attrs = w.insert("ca_attributes", &["attribute_id", "element_id", "locale_id", "table_num", "row_id", "value_source"]);
    let mut values: Vec<Row> = Vec::new();
    let value_cols = ["value_id", "element_id", "attribute_id", "item_id", "value_longtext1", "value_longtext2", "value_blob", "value_decimal1", "value_decimal2", "value_integer1", "value_sortable", "source_info"];
    let text_value = |ids: &mut NextIds, el: u16, attr: u32, s: &str| {
        ids.value += 1;
        let sortable: String = s.to_lowercase().chars().take(100).collect();
        Row::new().int(ids.value).int(el).int(attr).null().str(s).null().null().null().null().null().str(&sortable).str("")
    };
    for (o, &year) in objects.iter().zip(&years) {
        let add_attr = |attrs: &mut crate::sql::Insert<'_, W>, ids: &mut NextIds, el: u16, locale: Option<u16>| -> Result<u32> {
            ids.attribute += 1;
            attrs.row(Row::new().int(ids.attribute).int(el).opt_int(locale).int(table_num::OBJECTS).int(o.id).null())?;
            Ok(ids.attribute)
        };
        let a = add_attr(&mut attrs, ids, element::DESCRIPTION, Some(LOCALE_EN))?;
        let n = rng.gen_range(3..18);
        let d = text::description(rng, year, n);
        values.push(text_value(ids, element::DESCRIPTION, a, &d));
        if rng.gen_bool(0.9) {
            let a = add_attr(&mut attrs, ids, element::DATE, Some(LOCALE_EN))?;
            let (display, from, to) = match rng.gen_range(0..4) {
                0 => (format!("c. {year}"), year - 5, year + 5),
                1 => (format!("{year}"), year, year),
                2 => (format!("{} - {}", year, year + rng.gen_range(1..15)), year, year + 7),
                _ => (format!("{} {} {year}", rng.gen_range(1..29), ["January", "March", "May", "June", "September", "November"][rng.gen_range(0..6)]), year, year),
            };
            ids.value += 1;
            values.push(Row::new().int(ids.value).int(element::DATE).int(a).null().str(&display).null().null().raw(&historic(from, false)).raw(&historic(to, true)).null().str(&historic(from, false)[..15]).str(""));
        }
        if rng.gen_bool(0.8) {
            let a = add_attr(&mut attrs, ids, element::DIMENSIONS, None)?;
            let mut dims = vec![(element::DIMENSIONS_HEIGHT, rng.gen_range(2.0..180.0)), (element::DIMENSIONS_WIDTH, rng.gen_range(2.0..150.0))];
            if rng.gen_bool(0.5) {
                dims.push((element::DIMENSIONS_DEPTH, rng.gen_range(0.5..80.0)));
            }
            for (el, cm) in dims {
                let cm: f64 = (cm * 10.0f64).round() / 10.0;
                ids.value += 1;
                values.push(Row::new().int(ids.value).int(el).int(a).null().str(&format!("{cm} cm")).null().null().raw(&dec(cm / 100.0, 20)).null().null().null().str(""));
            }
        }
        if rng.gen_bool(0.7) {
            for _ in 0..rng.gen_range(1..=2) {
                let a = add_attr(&mut attrs, ids, element::MATERIALS, None)?;
                let item = *cat.materials().choose(rng).unwrap_or(&1);
                ids.value += 1;
                values.push(Row::new().int(ids.value).int(element::MATERIALS).int(a).int(item).str(&item.to_string()).null().null().null().null().int(item).null().str(""));
            }
        }
        let extras: [(u16, f64); 4] = [(element::INSCRIPTION, 0.3), (element::CREDIT_LINE, 0.85), (element::PROVENANCE, 0.5), (element::CONDITION, 0.4)];
        for (el, p) in extras {
            if rng.gen_bool(p) {
                let a = add_attr(&mut attrs, ids, el, Some(LOCALE_EN))?;
                let s = match el {
                    element::INSCRIPTION => text::inscription(rng, year),
                    element::CREDIT_LINE => text::credit_line(rng),
                    element::PROVENANCE => {
                        let mut s = text::provenance(rng, year);
                        if rng.gen_bool(0.4) {
                            s.push(' ');
                            s.push_str(&text::provenance(rng, year));
                        }
                        s
                    }
                    _ => text::condition(rng),
                };
                values.push(text_value(ids, el, a, &s));
            }
        }
        if values.len() >= 2000 {
            // Keep memory flat: attributes go first (values reference them).
            let pending = std::mem::take(&mut values);
            attrs.finish()?;
            let mut vins = w.insert("ca_attribute_values", &value_cols);
            for r in pending {
                vins.row(r)?;
            }
            vins.finish()?;
            attrs = w.insert("ca_attributes", &["attribute_id", "element_id", "locale_id", "table_num", "row_id", "value_source"]);
        }
    }
    attrs.finish()?;
    let mut vins = w.insert("ca_attribute_values", &value_cols);
    for r in values {
        vins.row(r)?;
    }
    vins.finish()?;

    let mut gins = w.insert("ca_guids", &["guid_id", "table_num", "row_id", "guid"]);
    for o in objects {
        ids.guid += 1;
        gins.row(Row::new().int(ids.guid).int(table_num::OBJECTS).int(o.id).str(&uuid(rng)))?;
    }
    gins.finish()?;
    logs.sort_by_key(|l| l.time);
    write_logs(w, rng, ids, &logs)?;
    Ok(())
}

fn write_logs<W: Write>(w: &mut SqlWriter<W>, rng: &mut StdRng, ids: &mut NextIds, logs: &[LogEntry]) -> Result<()> {
    let first = ids.log;
    let mut ins = w.insert("ca_change_log", &["log_id", "log_datetime", "user_id", "changetype", "logged_table_num", "logged_row_id", "rolledback", "unit_id", "batch_id"]);
    for l in logs {
        ids.log += 1;
        ins.row(Row::new().int(ids.log).int(l.time).int(l.user).str(&l.kind.to_string()).int(l.table).int(l.row).int(0).str(&text::hex32(rng)).null())?;
    }
    ins.finish()?;
    let mut ins = w.insert("ca_change_log_subjects", &["log_id", "subject_table_num", "subject_row_id"]);
    for (i, l) in logs.iter().enumerate() {
        ins.row(Row::new().int(first + i as u64 + 1).int(table_num::OBJECTS).int(l.subject))?;
    }
    ins.finish()?;
    let mut ins = w.insert("ca_change_log_snapshots", &["log_id", "snapshot"]);
    for (i, l) in logs.iter().enumerate() {
        ins.row(Row::new().int(first + i as u64 + 1).bin(&crate::php::serialize(&l.snapshot)))?;
    }
    ins.finish()?;
    Ok(())
}

// ------------------------------------------------------------------------------------------
// Representations

/// A representation to make: which object it belongs to and its upload.
#[derive(Clone, Debug)]
pub struct RepPlan {
    pub object_id: u32,
    pub is_primary: bool,
    pub deleted: bool,
    pub type_id: u32,
    pub upload: UploadPlan,
}

/// Picks the kind of an original: TIFF masters, camera JPEGs, some PNGs and PDFs; the first
/// four uploads cover every kind.
pub fn pick_kind(rng: &mut StdRng, i: usize) -> OriginalKind {
    match i {
        0 => OriginalKind::Tiff,
        1 => OriginalKind::Jpeg,
        2 => OriginalKind::Pdf,
        3 => OriginalKind::Png,
        _ => match rng.gen_range(0..100) {
            0..=44 => OriginalKind::Tiff,
            45..=79 => OriginalKind::Jpeg,
            80..=89 => OriginalKind::Png,
            _ => OriginalKind::Pdf,
        },
    }
}

/// Writes representation rows, labels, links to objects, change log entries and GUIDs.
pub fn write_representations<W: Write>(w: &mut SqlWriter<W>, rng: &mut StdRng, plans: &[RepPlan], uploads: &[Upload], staff: &[u32], ids: &mut NextIds) -> Result<()> {
    let cols = [
        "representation_id", "locale_id", "type_id", "idno", "idno_sort", "idno_sort_num", "md5", "mimetype", "media_class", "original_filename",
        "media", "media_metadata", "media_content", "deleted", "access", "status", "rank", "source_info", "view_count", "is_transcribable",
    ];
    let mut ins = w.insert("ca_object_representations", &cols);
    for (p, u) in plans.iter().zip(uploads) {
        ins.row(
            Row::new()
                .int(u.representation_id)
                .int(LOCALE_EN)
                .int(p.type_id)
                .str("")
                .str("")
                .int(0)
                .str(&u.md5)
                .str(u.kind.mimetype())
                .str(u.kind.media_class())
                .str(&u.original_filename)
                .bin(&u.media)
                .bin(&u.media_metadata)
                .opt_str(u.media_content.as_deref())
                .int(p.deleted as u8)
                .int(rng.gen_bool(0.7) as u8)
                .int(0)
                .int(u.representation_id)
                .str("")
                .int(rng.gen_range(0..300u32))
                .int((u.kind == OriginalKind::Pdf) as u8),
        )?;
    }
    ins.finish()?;
    let mut ins = w.insert("ca_object_representation_labels", &["label_id", "representation_id", "locale_id", "type_id", "name", "name_sort", "source_info", "is_preferred", "access", "notes"]);
    for u in uploads {
        ids.rep_label += 1;
        let name = if rng.gen_bool(0.6) { u.original_filename.clone() } else { "[BLANK]".to_string() };
        ins.row(Row::new().int(ids.rep_label).int(u.representation_id).int(LOCALE_EN).null().str(&name).str(&name.to_lowercase()).str("").int(1).int(0).str(""))?;
    }
    ins.finish()?;
    let mut ins = w.insert("ca_objects_x_object_representations", &["relation_id", "object_id", "representation_id", "is_primary", "rank"]);
    for (p, u) in plans.iter().zip(uploads) {
        ids.relation += 1;
        ins.row(Row::new().int(ids.relation).int(p.object_id).int(u.representation_id).int(p.is_primary as u8).int(ids.relation))?;
    }
    ins.finish()?;
    let mut gins = w.insert("ca_guids", &["guid_id", "table_num", "row_id", "guid"]);
    for u in uploads {
        ids.guid += 1;
        gins.row(Row::new().int(ids.guid).int(table_num::OBJECT_REPRESENTATIONS).int(u.representation_id).str(&uuid(rng)))?;
    }
    gins.finish()?;
    let logs: Vec<LogEntry> = plans
        .iter()
        .zip(uploads)
        .map(|(p, u)| LogEntry {
            time: p.upload.uploaded_at,
            user: staff.choose(rng).copied().unwrap_or(1),
            kind: 'I',
            table: table_num::OBJECT_REPRESENTATIONS,
            row: u.representation_id,
            subject: p.object_id,
            snapshot: Php::assoc([("original_filename", u.original_filename.clone().into()), ("md5", u.md5.clone().into()), ("mimetype", u.kind.mimetype().into())]),
        })
        .collect();
    write_logs(w, rng, ids, &logs)
}

// ------------------------------------------------------------------------------------------
// Event log and sessions

/// Writes `n` event log rows (logins, some failed ones) between `from` and `to`, by `users`.
pub fn write_eventlog<W: Write>(w: &mut SqlWriter<W>, rng: &mut StdRng, users: &[User], n: usize, from: u64, to: u64) -> Result<()> {
    let staff: Vec<&User> = users.iter().filter(|u| u.userclass == 0).collect();
    let public: Vec<&User> = users.iter().filter(|u| u.userclass == 1).collect();
    let mut times: Vec<u64> = (0..n).map(|_| rng.gen_range(from..to.max(from + 1))).collect();
    times.sort_unstable();
    let mut ins = w.insert("ca_eventlog", &["date_time", "code", "message", "source"]);
    for t in times {
        let u = if !public.is_empty() && rng.gen_bool(0.15) { public.choose(rng) } else { staff.choose(rng) };
        let Some(u) = u else { continue };
        let failed = rng.gen_bool(0.06);
        let (code, verb) = if failed { ("LOGF", "Failed login") } else { ("LOGN", "Successful login") };
        let msg = format!("{verb} for '{}'; IP={}; user agent='{}'", u.user_name, text::ip(rng), text::user_agent(rng));
        ins.row(Row::new().int(t).str(code).str(&msg).str("Auth"))?;
    }
    ins.finish()
}

/// The PHP-serialized variables of a web session.
pub fn session_value(rng: &mut StdRng, user: &User, created: u64, updated: u64, max_object: u32) -> Vec<u8> {
    let n = match rng.gen_range(0..10) {
        0..=3 => rng.gen_range(0..30),
        4..=7 => rng.gen_range(30..300),
        _ => rng.gen_range(300..1500),
    };
    let ids: Vec<Php> = (0..n).map(|_| Php::Int(i64::from(rng.gen_range(1..=max_object.max(1))))).collect();
    let searches: Vec<Php> = (0..rng.gen_range(1..8)).map(|_| Php::str(text::pick(rng, text::PLACES))).collect();
    let v = Php::assoc([
        ("_user_id", Php::Int(i64::from(user.id))),
        ("_session_start", created.into()),
        ("_lastping", updated.into()),
        ("_ip", text::ip(rng).into()),
        ("_user_agent", text::user_agent(rng).into()),
        ("last_action", "editor/objects/ObjectEditor/Edit".into()),
        (
            "result_context",
            Php::assoc([(
                "ca_objects",
                Php::assoc([(
                    "basic_search",
                    Php::assoc([
                        ("history", Php::list(searches)),
                        ("result_list", Php::list(ids)),
                        ("page", Php::Int(rng.gen_range(1..10))),
                        ("num_items_per_page", Php::Int(36)),
                        ("sort", "ca_object_labels.name_sort".into()),
                        ("sort_direction", "asc".into()),
                        ("view", if rng.gen_bool(0.5) { "thumbnail" } else { "list" }.into()),
                    ]),
                )]),
            )]),
        ),
        ("ca_objects_last_type_id", Php::Int(rng.gen_range(2..15))),
        ("csrf_tokens", Php::list((0..rng.gen_range(1..6)).map(|_| Php::str(text::hex32(rng))))),
    ]);
    crate::php::serialize(&v)
}

/// Writes `n` session rows (`namespace = 'SessionVars'`), last touched within `window`
/// seconds before `now`.
pub fn write_sessions<W: Write>(w: &mut SqlWriter<W>, rng: &mut StdRng, users: &[User], n: usize, now: u64, window: u64, max_object: u32) -> Result<Vec<String>> {
    let active: Vec<&User> = users.iter().filter(|u| u.active && u.userclass != 255).collect();
    let mut keys = Vec::with_capacity(n);
    let mut ins = w.insert("ca_persistent_cache", &["cache_key", "cache_value", "created_on", "updated_on", "namespace"]);
    for _ in 0..n {
        let Some(u) = active.choose(rng) else { break };
        let updated = now - rng.gen_range(0..window.max(1));
        let created = updated - rng.gen_range(0..7200);
        let key = text::hex32(rng);
        let value = session_value(rng, u, created, updated, max_object);
        ins.row(Row::new().str(&key).bin(&value).int(created).int(updated).str("SessionVars"))?;
        keys.push(key);
    }
    ins.finish()?;
    Ok(keys)
}

/// Writes the application variables row.
pub fn write_app_vars<W: Write>(w: &mut SqlWriter<W>, now: u64) -> Result<()> {
    let v = Php::assoc([
        ("last_search_indexing_run", now.into()),
        ("search_indexing_in_progress", Php::Int(0)),
        ("ca_application_version", "2.0.12".into()),
        ("task_queue_last_run", (now - 60).into()),
    ]);
    let mut ins = w.insert("ca_application_vars", &["vars"]);
    ins.row(Row::new().str(&String::from_utf8_lossy(&crate::php::serialize(&v))))?;
    ins.finish()
}

/// A seeded RNG for one purpose of one tenant.
pub fn rng_for(seed: u64, purpose: u64) -> StdRng {
    StdRng::seed_from_u64(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ purpose)
}

/// Writes the change log entries of updates made on a day.
pub fn write_update_logs<W: Write>(w: &mut SqlWriter<W>, rng: &mut StdRng, ids: &mut NextIds, entries: &[(u64, u32, u8, u32, u32, Php)]) -> Result<()> {
    let logs: Vec<LogEntry> = entries
        .iter()
        .map(|(time, user, table, row, subject, snap)| LogEntry { time: *time, user: *user, kind: 'U', table: *table, row: *row, subject: *subject, snapshot: snap.clone() })
        .collect();
    write_logs(w, rng, ids, &logs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_ids_are_stable() {
        let c = Catalog::standard();
        assert_eq!(c.lists[0].root, Some(1));
        assert_eq!(c.object_types()[0], 2);
        assert!(c.representation_types().iter().all(|&i| i > *c.object_types().last().unwrap()));
    }

    #[test]
    fn objects_and_users() {
        let mut rng = rng_for(1, 1);
        let objs = plan_objects(&mut rng, 100, 2_000_000_000, 86400 * 365);
        assert_eq!(objs.len(), 100);
        assert!(objs.windows(2).all(|w| w[0].created <= w[1].created));
        assert!(objs.iter().all(|o| o.idno.split('.').count() >= 2));
        let users = plan_users(&mut rng, 10, "tenant_1a2b3c4d");
        for class in [0u8, 1, 255] {
            assert!(users.iter().any(|(u, ..)| u.userclass == class));
        }
        assert_eq!(idno_sort("2019.12.3"), "0000002019.0000000012.0000000003");
    }
}
