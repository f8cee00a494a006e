//! Spanish as the reasons, digests and reports write it: dates, pesos, and the names of
//! finding kinds, steps and levels, with what each kind asks of an office.

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

/// What a finding kind means, what the office is to do, and the law it rests on: said once
/// per digest instead of on every row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindGuide {
    pub meaning: &'static str,
    pub action: &'static str,
    pub basis: &'static str,
}

pub fn kind_guide(kind: Kind) -> KindGuide {
    match kind {
        Kind::Closable => KindGuide {
            meaning: "El plazo de ejecución terminó, el contrato no requiere liquidación (o ya \
                      se liquidó) y no quedan obligaciones posteriores vigentes, pero el \
                      expediente electrónico sigue abierto en SECOP II.",
            action: "Verifique que no haya pagos ni obligaciones pendientes y cierre el \
                     expediente en SECOP II antes del plazo.",
            basis: "Ley 80 de 1993 art. 60, modificado por el Decreto-Ley 019 de 2012 art. \
                    217; Circular Externa 002 de 2023 de Colombia Compra Eficiente.",
        },
        Kind::LiquidationDue => KindGuide {
            meaning: "El contrato requiere liquidación y no hay acta de liquidación publicada \
                      en SECOP II.",
            action: "Liquide de común acuerdo en el plazo pactado (o en 4 meses); si no, \
                     unilateralmente en los 2 meses siguientes; después, de una u otra forma \
                     hasta 2 años más. Vencido ese término, la entidad pierde la competencia: \
                     deje constancia y cierre el expediente.",
            basis: "Ley 80 de 1993 arts. 60 y 61; Ley 1150 de 2007 art. 11.",
        },
        Kind::StateOutdated => KindGuide {
            meaning: "SECOP II muestra un estado que ya no corresponde al contrato (por \
                      ejemplo, en ejecución cuando el plazo ya terminó).",
            action: "Publique en SECOP II los documentos y actos que reflejen el estado real \
                     del contrato.",
            basis: "Ley 1150 de 2007 art. 3; Decreto 1082 de 2015 art. 2.2.1.1.1.7.1.",
        },
        Kind::MissingDocuments => KindGuide {
            meaning: "No se encontraron publicados en SECOP II documentos exigidos en la \
                      etapa que el contrato ya alcanzó.",
            action: "Publique los documentos que faltan; deben publicarse dentro de los 3 \
                     días siguientes a su expedición.",
            basis: "Ley 1150 de 2007 art. 3; Decreto 1082 de 2015 art. 2.2.1.1.1.7.1.",
        },
    }
}

/// The Spanish name of a liquidation step (`bilateral`, `unilateral`, `late`,
/// `competence_lost`).
pub fn step_label(step: &str) -> String {
    match step {
        "bilateral" => "liquidación de común acuerdo".into(),
        "unilateral" => "liquidación unilateral".into(),
        "late" => "liquidación tardía (hasta 2 años)".into(),
        "competence_lost" => "pérdida de competencia para liquidar".into(),
        other => other.replace('_', " "),
    }
}

/// Business days left, in words: `vencido hace 3 días hábiles`, `vence hoy`, `queda 1 día
/// hábil`, `quedan 5 días hábiles`.
pub fn days_left(n: i64) -> String {
    let days =
        |n: u64| if n == 1 { "1 día hábil".to_string() } else { format!("{n} días hábiles") };
    match n {
        0 => "vence hoy".into(),
        n if n < 0 => format!("vencido hace {}", days(n.unsigned_abs())),
        1 => "queda 1 día hábil".into(),
        n => format!("quedan {}", days(n as u64)),
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
    fn days_left_are_written_in_words() {
        assert_eq!(days_left(-1), "vencido hace 1 día hábil");
        assert_eq!(days_left(-12), "vencido hace 12 días hábiles");
        assert_eq!(days_left(0), "vence hoy");
        assert_eq!(days_left(1), "queda 1 día hábil");
        assert_eq!(days_left(7), "quedan 7 días hábiles");
    }

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
