//! Spanish as the reasons, digests and reports write it: dates, pesos, and the names of
//! finding kinds and levels.

use chrono::{Datelike, NaiveDate};

use super::Kind;

/// `2025-03-31` as Spanish text: `31 de marzo de 2025`.
pub fn fecha(d: NaiveDate) -> String {
    const MESES: [&str; 12] = [
        "enero",
        "febrero",
        "marzo",
        "abril",
        "mayo",
        "junio",
        "julio",
        "agosto",
        "septiembre",
        "octubre",
        "noviembre",
        "diciembre",
    ];
    format!("{} de {} de {}", d.day(), MESES[d.month0() as usize], d.year())
}

/// Centavos as Colombian pesos: `$ 31.500.000` (centavos shown only when not zero).
pub fn pesos(centavos: i64) -> String {
    let neg = centavos < 0;
    let abs = centavos.unsigned_abs();
    let (int, cents) = (abs / 100, abs % 100);
    let digits = int.to_string();
    let mut grouped = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push('.');
        }
        grouped.push(ch);
    }
    let sign = if neg { "-" } else { "" };
    if cents == 0 { format!("{sign}$ {grouped}") } else { format!("{sign}$ {grouped},{cents:02}") }
}

/// The Spanish name of a finding kind, as a digest heading.
pub fn kind_label(kind: Kind) -> &'static str {
    match kind {
        Kind::Closable => "Expedientes que deben cerrarse",
        Kind::LiquidationDue => "Contratos por liquidar",
        Kind::StateOutdated => "Estado desactualizado en SECOP II",
        Kind::MissingDocuments => "Documentos sin publicar",
    }
}

/// The level name with a capital: `vencido` → `Vencido`.
pub fn level_label(level: &str) -> String {
    let mut c = level.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pesos_are_written_the_colombian_way() {
        assert_eq!(pesos(3_150_000_000), "$ 31.500.000");
        assert_eq!(pesos(150_050), "$ 1.500,50");
        assert_eq!(pesos(-100), "-$ 1");
        assert_eq!(pesos(0), "$ 0");
    }

    #[test]
    fn dates_are_written_in_spanish() {
        assert_eq!(fecha(NaiveDate::from_ymd_opt(2025, 3, 31).unwrap()), "31 de marzo de 2025");
    }
}
