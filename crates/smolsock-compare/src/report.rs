//! The comparison as a terminal table, a Markdown table, or JSON.

use serde_json::{Value, json};
use smolsock_frames::Style;

use super::scenarios::Observed;
use super::{Row, ladders};

fn cell(observed: &Observed) -> String {
    match observed {
        Ok(seen) => seen.text.clone(),
        Err(why) if why.starts_with("cannot run on the board") => why.clone(),
        Err(why) => format!("could not run: {why}"),
    }
}

fn verdict(row: &Row) -> &'static str {
    if row.failed() {
        "n/a"
    } else if row.same() {
        "same"
    } else {
        "different"
    }
}

/// Greedy word wrap to `width` columns (a word longer than that gets a line of its own).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

const WIDTHS: [usize; 5] = [6, 28, 36, 36, 9];
/// With a board column: narrower cells, so the table stays about as wide.
const WIDTHS_BOARD: [usize; 6] = [6, 24, 30, 30, 30, 9];

fn has_board(rows: &[Row]) -> bool {
    rows.iter().any(|r| r.board.is_some())
}

/// The name of the board's column.
pub const BOARD_COLUMN: &str = "board (no_std core on lm3s6965 in QEMU)";

fn text_row(cells: &[&str], widths: &[usize]) -> Vec<String> {
    let wrapped: Vec<Vec<String>> = cells
        .iter()
        .zip(widths)
        .map(|(text, width)| wrap(text, *width))
        .collect();
    let height = wrapped.iter().map(Vec::len).max().unwrap_or(1);
    (0..height)
        .map(|i| {
            let parts: Vec<String> = wrapped
                .iter()
                .zip(widths.iter().copied())
                .map(|(lines, width)| {
                    let part = lines.get(i).map_or("", String::as_str);
                    format!("{part:<width$}")
                })
                .collect();
            parts.join(" | ").trim_end().to_string()
        })
        .collect()
}

/// The table for a terminal: one block of wrapped columns per scenario, its "why" under
/// it, then the S13 ladders drawn in `style`.
pub fn text(rows: &[Row], style: Style) -> String {
    let board = has_board(rows);
    let widths: &[usize] = if board { &WIDTHS_BOARD } else { &WIDTHS };
    let mut out = Vec::new();
    let mut header = vec![
        "rule",
        "what was done",
        "kernel (std::net)",
        "smoltcp (no_std core)",
    ];
    if board {
        header.push(BOARD_COLUMN);
    }
    header.push("same?");
    out.extend(text_row(&header, widths));
    let rule = widths.iter().sum::<usize>() + 3 * (widths.len() - 1);
    out.push("=".repeat(rule));
    for row in rows {
        let kernel = cell(&row.kernel);
        let smoltcp = cell(&row.smoltcp);
        let on_board = row.board.as_ref().map(cell).unwrap_or_default();
        let mut cells = vec![row.scenario.rule, row.scenario.did, &kernel, &smoltcp];
        if board {
            cells.push(&on_board);
        }
        cells.push(verdict(row));
        out.extend(text_row(&cells, widths));
        for (i, line) in wrap(&why(row), rule - 9).into_iter().enumerate() {
            out.push(format!(
                "{}{line}",
                if i == 0 { "  why:  " } else { "        " }
            ));
        }
        if let Some(figures) = measured(row) {
            out.push(format!("  took: {figures}"));
        }
        out.push("-".repeat(rule));
    }
    for (stack, ladder) in ladders(rows) {
        out.push(String::new());
        out.push(format!(
            "S13 on {stack}: connect, one echo, close (states follow from the segments)"
        ));
        out.extend(ladder.render(style).iter().map(|l| format!("  {l}")));
    }
    out.join("\n") + "\n"
}

/// The row's "why", and the board's where it has one and the board ran.
fn why(row: &Row) -> String {
    match (&row.board, row.scenario.board_why) {
        (Some(_), board) if !board.is_empty() => {
            format!("{}; on the board: {board}", row.scenario.why)
        }
        _ => row.scenario.why.to_string(),
    }
}

/// The row's figures that change from run to run, per stack ("kernel 0.31 s, smoltcp
/// 9.8 s"), when it has any.
fn measured(row: &Row) -> Option<String> {
    let of = |o: &Observed| o.as_ref().ok().and_then(|seen| seen.measured.clone());
    let board = row.board.as_ref().and_then(of);
    match (of(&row.kernel), of(&row.smoltcp), board) {
        (None, None, None) => None,
        (k, s, b) => {
            let mut text = format!(
                "kernel {}, smoltcp {}",
                k.as_deref().unwrap_or("-"),
                s.as_deref().unwrap_or("-")
            );
            if row.board.is_some() {
                text += &format!(", board {}", b.as_deref().unwrap_or("-"));
            }
            Some(text)
        }
    }
}

fn md_escape(text: &str) -> String {
    text.replace('|', "\\|")
}

/// The header of the Markdown table (also how a reader finds it in a document).
pub const MARKDOWN_HEADER: &str =
    "| Rule | What was done | Kernel (std::net) | smoltcp (no_std core) | Same? | Why |";
/// The header of the Markdown table with the board's column.
pub const MARKDOWN_HEADER_BOARD: &str = "| Rule | What was done | Kernel (std::net) | smoltcp (no_std core) | Board (no_std core on lm3s6965 in QEMU) | Same? | Why |";

/// The table in Markdown, then the S13 ladders as code blocks, drawn in `style` (ASCII
/// for documents, whose readers may not have a font with box-drawing characters).
pub fn markdown(rows: &[Row], style: Style) -> String {
    let board = has_board(rows);
    let mut out = if board {
        vec![
            MARKDOWN_HEADER_BOARD.to_string(),
            "|---|---|---|---|---|---|---|".to_string(),
        ]
    } else {
        vec![
            MARKDOWN_HEADER.to_string(),
            "|---|---|---|---|---|---|".to_string(),
        ]
    };
    for row in rows {
        let on_board = match &row.board {
            Some(observed) if board => format!(" {} |", md_escape(&cell(observed))),
            _ if board => " |".to_string(),
            _ => String::new(),
        };
        out.push(format!(
            "| {} | {} | {} | {} |{on_board} {} | {} |",
            row.scenario.rule,
            md_escape(row.scenario.did),
            md_escape(&cell(&row.kernel)),
            md_escape(&cell(&row.smoltcp)),
            verdict(row),
            md_escape(&why(row))
        ));
    }
    for (stack, ladder) in ladders(rows) {
        out.push(String::new());
        out.push(format!("S13 on {stack}:"));
        out.push(String::new());
        out.push("```text".into());
        out.extend(ladder.render(style));
        out.push("```".into());
    }
    out.join("\n") + "\n"
}

/// The same as data: one object per row, and the ladders (their lines, drawn in `style`).
pub fn json(rows: &[Row], style: Style) -> Value {
    let drawn: serde_json::Map<String, Value> = ladders(rows)
        .into_iter()
        .map(|(stack, ladder)| (stack.to_string(), json!(ladder.render(style))))
        .collect();
    let observed = |o: &Observed| match o {
        Ok(seen) => json!({ "seen": seen.text, "measured": seen.measured }),
        Err(why) => json!({ "error": why }),
    };
    let rows: Vec<Value> = rows
        .iter()
        .map(|row| {
            let mut value = json!({
                "id": row.scenario.id,
                "rule": row.scenario.rule,
                "did": row.scenario.did,
                "kernel": observed(&row.kernel),
                "smoltcp": observed(&row.smoltcp),
                "verdict": verdict(row),
                "why": row.scenario.why,
            });
            if let Some(board) = &row.board {
                value["board"] = observed(board);
                value["board_why"] = json!(row.scenario.board_why);
            }
            value
        })
        .collect();
    json!({ "rows": rows, "ladders": drawn })
}
