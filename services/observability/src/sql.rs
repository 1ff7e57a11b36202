//! Multi-row inserts shared by the log and metric stores.
//!
//! Parameters are numbered: `$N` on Postgres, `?N` on SQLite. SQLite resolves `$N` parameters by
//! name, scanning every parameter for each one bound — quadratic in a statement of thousands of
//! parameters, and the largest cost of log ingest before it used `?N`.

use lamina_metadata::Store;

/// Most rows per multi-row statement.
pub(crate) const MAX_ROWS_PER_STATEMENT: usize = 256;

/// The parameter marker of `store`'s engine.
pub(crate) fn marker(store: &Store) -> char {
    match store {
        Store::Sqlite(_) => '?',
        Store::Postgres(_) => '$',
    }
}

/// `(..), (..)`: `rows` copies of `template`, where each `?` becomes the next parameter counted from
/// `first` and `$N` stays parameter N (shared by every row); both written with `marker`.
pub(crate) fn value_rows(template: &str, rows: usize, first: usize, marker: char) -> String {
    let mut out = String::with_capacity(rows * (template.len() + 16));
    let mut n = first;
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for c in template.chars() {
            match c {
                '?' => {
                    out.push(marker);
                    out.push_str(&n.to_string());
                    n += 1;
                }
                '$' => out.push(marker),
                c => out.push(c),
            }
        }
        out.push(')');
    }
    out
}

/// Splits `len` rows into statements of power-of-two sizes (largest first): preparing a statement
/// of hundreds of rows takes SQLite tens of milliseconds, so each connection prepares the at most
/// nine sizes once and keeps them in its statement cache.
fn statement_sizes(mut len: usize) -> Vec<usize> {
    let mut sizes = Vec::new();
    while len > 0 {
        let size = if len >= MAX_ROWS_PER_STATEMENT { MAX_ROWS_PER_STATEMENT } else { 1 << len.ilog2() };
        sizes.push(size);
        len -= size;
    }
    sizes
}

/// `items` cut into consecutive pieces of [`statement_sizes`].
pub(crate) fn pieces<T>(items: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = items;
    statement_sizes(items.len()).into_iter().map(move |size| {
        let (piece, tail) = rest.split_at(size);
        rest = tail;
        piece
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_rows_number_parameters_in_order() {
        assert_eq!(value_rows("?, $1, ?", 2, 2, '$'), "($2, $1, $3), ($4, $1, $5)");
        assert_eq!(value_rows("?, $1, ?", 2, 2, '?'), "(?2, ?1, ?3), (?4, ?1, ?5)");
        assert_eq!(value_rows("?", 1, 1, '$'), "($1)");
    }

    #[test]
    fn statements_have_power_of_two_sizes() {
        assert_eq!(statement_sizes(0), Vec::<usize>::new());
        assert_eq!(statement_sizes(1), vec![1]);
        assert_eq!(statement_sizes(700), vec![256, 256, 128, 32, 16, 8, 4]);
        let items: Vec<usize> = (0..13).collect();
        let pieces: Vec<&[usize]> = pieces(&items).collect();
        assert_eq!(pieces, vec![&items[0..8], &items[8..12], &items[12..13]]);
    }
}
