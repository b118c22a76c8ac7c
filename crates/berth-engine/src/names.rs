//! Container names: Docker's validity rule and generated `adjective_surname` names.

use rand::seq::SliceRandom;

const ADJECTIVES: &[&str] = &[
    "admiring", "adoring", "affectionate", "agitated", "amazing", "angry", "awesome",
    "beautiful", "blissful", "bold", "boring", "brave", "busy", "charming", "clever",
    "compassionate", "competent", "condescending", "confident", "cool", "cranky", "crazy",
    "dazzling", "determined", "distracted", "dreamy", "eager", "ecstatic", "elastic",
    "elated", "elegant", "eloquent", "epic", "exciting", "fervent", "festive", "flamboyant",
    "focused", "friendly", "frosty", "funny", "gallant", "gifted", "goofy", "gracious",
    "great", "happy", "hardcore", "heuristic", "hopeful", "hungry", "infallible", "inspiring",
    "intelligent", "interesting", "jolly", "jovial", "keen", "kind", "laughing", "loving",
    "lucid", "magical", "modest", "musing", "mystifying", "naughty", "nervous", "nice",
    "nifty", "nostalgic", "objective", "optimistic", "peaceful", "pedantic", "pensive",
    "practical", "priceless", "quirky", "quizzical", "recursing", "relaxed", "reverent",
    "romantic", "sad", "serene", "sharp", "silly", "sleepy", "stoic", "strange", "stupefied",
    "suspicious", "sweet", "tender", "thirsty", "trusting", "unruffled", "upbeat", "vibrant",
    "vigilant", "vigorous", "wizardly", "wonderful", "xenodochial", "youthful", "zealous",
    "zen",
];

const SURNAMES: &[&str] = &[
    "agnesi", "albattani", "allen", "almeida", "archimedes", "ardinghelli", "aryabhata",
    "austin", "babbage", "banach", "bardeen", "bartik", "bassi", "bell", "bhabha", "black",
    "blackwell", "bohr", "booth", "borg", "bose", "brahmagupta", "brattain", "brown", "burnell",
    "cannon", "carson", "cartwright", "chandrasekhar", "chaplygin", "chatelet", "chebyshev",
    "clarke", "cohen", "colden", "cori", "cray", "curie", "darwin", "davinci", "dijkstra",
    "dirac", "driscoll", "dubinsky", "easley", "edison", "einstein", "elion", "engelbart",
    "euclid", "euler", "faraday", "fermat", "fermi", "feynman", "franklin", "gagarin",
    "galileo", "gauss", "germain", "goldberg", "goldwasser", "goodall", "hamilton", "hawking",
    "heisenberg", "hermann", "hodgkin", "hofstadter", "hopper", "hypatia", "jackson",
    "jennings", "johnson", "kalam", "kapitsa", "keller", "kepler", "khorana", "kilby",
    "knuth", "kowalevski", "lalande", "lamarr", "lamport", "leakey", "leavitt", "lehmann",
    "lewin", "liskov", "lovelace", "lumiere", "mayer", "mccarthy", "mcclintock", "meitner",
    "mendel", "merkle", "mirzakhani", "morse", "napier", "nash", "newton", "nobel", "noether",
    "noyce", "pascal", "pasteur", "payne", "perlman", "pike", "poincare", "ptolemy", "raman",
    "ramanujan", "ride", "ritchie", "roentgen", "rosalind", "saha", "sammet", "shannon",
    "shockley", "sinoussi", "snyder", "spence", "stonebraker", "swanson", "swirles", "tesla",
    "thompson", "torvalds", "turing", "varahamihira", "visvesvaraya", "volhard", "wescoff",
    "wiles", "williams", "wilson", "wing", "wozniak", "wright", "yalow", "yonath",
];

/// A random `adjective_surname` name.
pub fn generate() -> String {
    let mut rng = rand::thread_rng();
    let a = ADJECTIVES.choose(&mut rng).copied().unwrap_or("eager");
    let s = SURNAMES.choose(&mut rng).copied().unwrap_or("turing");
    format!("{a}_{s}")
}

/// Docker's rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]+` (at least two characters), optional
/// leading `/`. Returns the name without the slash.
pub fn validate(name: &str) -> Result<&str, String> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    let mut chars = bare.chars();
    let ok = match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {
            let rest: Vec<char> = chars.collect();
            !rest.is_empty()
                && rest.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        }
        _ => false,
    };
    if ok {
        Ok(bare)
    } else {
        Err(format!("Invalid container name ({bare}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_validate_like_docker() {
        for (name, ok) in [
            ("web", true),
            ("/web", true),
            ("a1.b_c-d", true),
            ("x", false),
            ("_web", false),
            ("we b", false),
            ("", false),
            ("web/x", false),
        ] {
            assert_eq!(validate(name).is_ok(), ok, "{name}");
        }
        assert_eq!(
            validate("x").expect_err("invalid"),
            "Invalid container name (x), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        );
    }

    #[test]
    fn generated_names_are_valid() {
        for _ in 0..100 {
            let n = generate();
            assert!(validate(&n).is_ok(), "{n}");
            assert_eq!(n.matches('_').count(), 1, "{n}");
        }
    }
}
