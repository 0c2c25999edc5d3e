//! Label and field selectors, parsed, validated and evaluated the way the
//! Kubernetes API server does it.
//!
//! Label selectors come in two shapes: the string form of `kubectl -l` and
//! the `labelSelector` query parameter (`app=web,tier in (a,b),!canary`), and
//! the `metav1.LabelSelector` object found in workload specs (`matchLabels`
//! plus `matchExpressions`). Both end up as the same list of requirements,
//! sorted by key, so the canonical string form ([`LabelSelector`]'s
//! `Display`) is the one Kubernetes prints in `Scale.status.selector` and in
//! the `Selector` column of `kubectl get -o wide`.
//!
//! Field selectors (`fieldSelector=spec.nodeName=node-1`) only support `=`,
//! `==` and `!=`, and only on the few fields each kind declares selectable;
//! [`FieldSelector::check_supported`] rejects the rest with Kubernetes'
//! `field label not supported` message so clients see the same 400.

use std::fmt;

use serde_json::{Map, Value};

/// Why a selector was rejected. The messages are Kubernetes' own, because
/// they reach users unchanged inside a `Status`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// One requirement of a label selector string is malformed or names an
    /// invalid key or value.
    #[error("unable to parse requirement: {0}")]
    Requirement(String),
    /// The label selector string is not a comma-separated list of
    /// requirements.
    #[error("{0}")]
    Syntax(String),
    /// A `metav1.LabelSelector` object uses an operator outside
    /// `In`/`NotIn`/`Exists`/`DoesNotExist`.
    #[error("{0:?} is not a valid label selector operator")]
    Operator(String),
    /// A `metav1.LabelSelector` object is not shaped like one, or one of its
    /// requirements is invalid.
    #[error("{0}")]
    Invalid(String),
    /// A field selector term has no `=`, `==` or `!=`.
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    FieldTerm { selector: String, term: String },
    /// A field selector value uses a backslash before anything but `\`, `,`
    /// or `=`.
    #[error("invalid field selector: invalid escape sequence: {0}")]
    Escape(String),
    /// A field selector value contains an unescaped `,` or `=` (Kubernetes
    /// prints the character's code point).
    #[error("invalid field selector: unescaped character in value: {0}")]
    UnescapedRune(u32),
    /// The field is not selectable on this kind.
    #[error("field label not supported: {0}")]
    UnsupportedField(String),
}

/// How a label requirement relates a key to its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    In,
    NotIn,
    Equals,
    DoubleEquals,
    NotEquals,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

/// One `key op values` clause of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    op: Operator,
    values: Vec<String>,
}

impl Requirement {
    /// Build a requirement, validating key and values as Kubernetes'
    /// `labels.NewRequirement` does.
    pub fn new(key: &str, op: Operator, values: Vec<String>) -> Result<Self, String> {
        let mut errs = Vec::new();
        if let Err(e) = validate_label_key(key) {
            errs.push(invalid_value("key", key, &e));
        }
        errs.extend(check_value_count(op, &values));
        for (i, v) in values.iter().enumerate() {
            if let Err(e) = validate_label_value(v) {
                errs.push(invalid_value(&format!("values[{i}][{key}]"), v, &e));
            }
        }
        match errs.len() {
            0 => Ok(Requirement {
                key: key.to_string(),
                op,
                values,
            }),
            1 => Err(errs.remove(0)),
            _ => Err(format!("[{}]", errs.join(", "))),
        }
    }

    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.op
    }

    /// The values, empty for `Exists` and `DoesNotExist`.
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Whether a label set satisfies this requirement. A missing key
    /// satisfies `notin`, `!=` and `!key`, as in Kubernetes.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let value = labels.and_then(|l| l.get(&self.key)).map(label_str);
        match (self.op, value) {
            (Operator::In | Operator::Equals | Operator::DoubleEquals, Some(v)) => self.has(v),
            (Operator::NotIn | Operator::NotEquals, Some(v)) => !self.has(v),
            (Operator::NotIn | Operator::NotEquals, None) => true,
            (Operator::Exists, v) => v.is_some(),
            (Operator::DoesNotExist, v) => v.is_none(),
            (Operator::GreaterThan | Operator::LessThan, Some(v)) => self.compare(v),
            _ => false,
        }
    }

    fn has(&self, v: &str) -> bool {
        self.values.iter().any(|x| x == v)
    }

    fn compare(&self, v: &str) -> bool {
        let (Ok(have), Some(Ok(want))) = (
            v.parse::<i64>(),
            self.values.first().map(|w| w.parse::<i64>()),
        ) else {
            return false;
        };
        match self.op {
            Operator::GreaterThan => have > want,
            _ => have < want,
        }
    }
}

fn label_str(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn check_value_count(op: Operator, values: &[String]) -> Vec<String> {
    let shown = || format!("{values:?}");
    match op {
        Operator::In | Operator::NotIn if values.is_empty() => vec![format!(
            "values: Invalid value: {}: for 'in', 'notin' operators, values set can't be empty",
            shown()
        )],
        Operator::Equals | Operator::DoubleEquals | Operator::NotEquals if values.len() != 1 => {
            vec![format!(
                "values: Invalid value: {}: exact-match compatibility requires one single value",
                shown()
            )]
        }
        Operator::Exists | Operator::DoesNotExist if !values.is_empty() => vec![format!(
            "values: Invalid value: {}: values set must be empty for exists and does not exist",
            shown()
        )],
        Operator::GreaterThan | Operator::LessThan => check_integer_values(values),
        _ => Vec::new(),
    }
}

fn check_integer_values(values: &[String]) -> Vec<String> {
    if values.len() != 1 {
        return vec![format!(
            "values: Invalid value: {values:?}: for 'Gt', 'Lt' operators, exactly one value is required"
        )];
    }
    values
        .iter()
        .enumerate()
        .filter(|(_, v)| v.parse::<i64>().is_err())
        .map(|(i, v)| {
            invalid_value(
                &format!("values[{i}]"),
                v,
                "for 'Gt', 'Lt' operators, the value must be an integer",
            )
        })
        .collect()
}

/// A Kubernetes `field.Invalid` error rendered as text.
fn invalid_value(path: &str, value: &str, detail: &str) -> String {
    format!("{path}: Invalid value: {value:?}: {detail}")
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.op == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let op = match self.op {
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::In => " in ",
            Operator::NotIn => " notin ",
            Operator::GreaterThan => ">",
            Operator::LessThan => "<",
        };
        let mut values = self.values.clone();
        values.sort();
        let values = values.join(",");
        if matches!(self.op, Operator::In | Operator::NotIn) {
            write!(f, "{op}({values})")
        } else {
            write!(f, "{op}{values}")
        }
    }
}

/// A label selector: requirements that must all hold, or the "nothing"
/// selector that a `null` `metav1.LabelSelector` stands for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
    nothing: bool,
}

impl LabelSelector {
    /// The selector that matches every object.
    pub fn everything() -> Self {
        LabelSelector::default()
    }

    /// The selector that matches no object (a `null` selector in a spec).
    pub fn nothing() -> Self {
        LabelSelector {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// Parse the `kubectl -l` / `labelSelector` syntax: `a=b`, `a==b`,
    /// `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`, `a>1`, `a<1`,
    /// comma-joined, with keys and values validated like Kubernetes.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut requirements = Parser::new(s).parse()?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector {
            requirements,
            nothing: false,
        })
    }

    /// Convert a `metav1.LabelSelector` object. `null` (or a missing field)
    /// selects nothing; `{}` selects everything.
    pub fn from_json(v: &Value) -> Result<Self, SelectorError> {
        let obj = match v {
            Value::Null => return Ok(LabelSelector::nothing()),
            Value::Object(o) => o,
            other => {
                return Err(SelectorError::Invalid(format!(
                    "a label selector must be an object, not {other}"
                )))
            }
        };
        let mut requirements = match_labels(obj.get("matchLabels"))?;
        requirements.extend(match_expressions(obj.get("matchExpressions"))?);
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector {
            requirements,
            nothing: false,
        })
    }

    /// Whether a label set (an object's `metadata.labels`, absent when the
    /// object has none) satisfies every requirement.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether the selector puts no restriction at all (matches everything).
    /// The "nothing" selector is not empty, as in Kubernetes.
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// Whether this is the selector that matches nothing.
    pub fn matches_nothing(&self) -> bool {
        self.nothing
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether an object's `metadata.labels` satisfy the selector.
    pub fn matches_object(&self, obj: &Value) -> bool {
        self.matches(obj.pointer("/metadata/labels").and_then(Value::as_object))
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

fn match_labels(v: Option<&Value>) -> Result<Vec<Requirement>, SelectorError> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let map = v
        .as_object()
        .ok_or_else(|| SelectorError::Invalid("matchLabels must be an object".into()))?;
    map.iter()
        .map(|(k, v)| {
            let v = v.as_str().ok_or_else(|| {
                SelectorError::Invalid(format!("matchLabels[{k}] must be a string"))
            })?;
            Requirement::new(k, Operator::Equals, vec![v.to_string()])
                .map_err(SelectorError::Invalid)
        })
        .collect()
}

fn match_expressions(v: Option<&Value>) -> Result<Vec<Requirement>, SelectorError> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let list = v
        .as_array()
        .ok_or_else(|| SelectorError::Invalid("matchExpressions must be a list".into()))?;
    list.iter().map(match_expression).collect()
}

fn match_expression(e: &Value) -> Result<Requirement, SelectorError> {
    let key = e["key"].as_str().unwrap_or("");
    let op_name = e["operator"].as_str().unwrap_or("");
    let op = match op_name {
        "In" => Operator::In,
        "NotIn" => Operator::NotIn,
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        other => return Err(SelectorError::Operator(other.to_string())),
    };
    let values = match &e["values"] {
        Value::Null => Vec::new(),
        Value::Array(a) => a
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                SelectorError::Invalid("matchExpressions values must be strings".into())
            })?,
        _ => {
            return Err(SelectorError::Invalid(
                "matchExpressions values must be a list".into(),
            ))
        }
    };
    Requirement::new(key, op, values).map_err(SelectorError::Invalid)
}

// ---------------------------------------------------------------------------
// Label selector string syntax: a lexer and a recursive-descent parser that
// accept and reject exactly what Kubernetes' `labels.Parse` does, with its
// error messages.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    End,
    ClosedPar,
    Comma,
    Not,
    DoubleEquals,
    Equals,
    Greater,
    Identifier,
    In,
    Less,
    NotEquals,
    NotIn,
    OpenPar,
}

/// Whether `in` and `notin` are keywords (`KeyAndOperator`) or plain values
/// (`Values`, as in `a in (in)`).
#[derive(Clone, Copy, PartialEq)]
enum Context {
    KeyAndOperator,
    Values,
}

fn is_special(c: u8) -> bool {
    matches!(c, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn keyword(s: &str) -> Option<Token> {
    Some(match s {
        ")" => Token::ClosedPar,
        "," => Token::Comma,
        "!" => Token::Not,
        "==" => Token::DoubleEquals,
        "=" => Token::Equals,
        ">" => Token::Greater,
        "in" => Token::In,
        "<" => Token::Less,
        "!=" => Token::NotEquals,
        "notin" => Token::NotIn,
        "(" => Token::OpenPar,
        _ => return None,
    })
}

fn lex(s: &str) -> Vec<(Token, String)> {
    let bytes = s.as_bytes();
    let mut pos = 0;
    let mut out = Vec::new();
    loop {
        while pos < bytes.len() && is_space(bytes[pos]) {
            pos += 1;
        }
        if pos >= bytes.len() {
            out.push((Token::End, String::new()));
            return out;
        }
        let start = pos;
        if is_special(bytes[pos]) {
            // Operators are one character, or two for `!=` and `==`.
            pos += 1;
            if pos < bytes.len() && is_special(bytes[pos]) && keyword(&s[start..=pos]).is_some() {
                pos += 1;
            }
        } else {
            while pos < bytes.len() && !is_special(bytes[pos]) && !is_space(bytes[pos]) {
                pos += 1;
            }
        }
        let lit = &s[start..pos];
        out.push((keyword(lit).unwrap_or(Token::Identifier), lit.to_string()));
    }
}

struct Parser {
    items: Vec<(Token, String)>,
    pos: usize,
}

impl Parser {
    fn new(s: &str) -> Self {
        Parser {
            items: lex(s),
            pos: 0,
        }
    }

    fn lookahead(&self, ctx: Context) -> (Token, String) {
        let (tok, lit) = self
            .items
            .get(self.pos)
            .cloned()
            .unwrap_or((Token::End, String::new()));
        match (ctx, tok) {
            (Context::Values, Token::In | Token::NotIn) => (Token::Identifier, lit),
            _ => (tok, lit),
        }
    }

    fn consume(&mut self, ctx: Context) -> (Token, String) {
        let item = self.lookahead(ctx);
        self.pos += 1;
        item
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, SelectorError> {
        let mut out = Vec::new();
        loop {
            let (tok, lit) = self.lookahead(Context::Values);
            match tok {
                Token::Identifier | Token::Not => {
                    out.push(self.requirement().map_err(SelectorError::Requirement)?);
                    if self.after_requirement()? {
                        return Ok(out);
                    }
                }
                Token::End => return Ok(out),
                _ => {
                    return Err(SelectorError::Syntax(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    )))
                }
            }
        }
    }

    /// After a requirement: `true` at the end, `false` when a comma leads on
    /// to another requirement.
    fn after_requirement(&mut self) -> Result<bool, SelectorError> {
        let (tok, lit) = self.consume(Context::Values);
        match tok {
            Token::End => Ok(true),
            Token::Comma => {
                let (next, lit) = self.lookahead(Context::Values);
                if next == Token::Identifier || next == Token::Not {
                    Ok(false)
                } else {
                    Err(SelectorError::Syntax(format!(
                        "found '{lit}', expected: identifier after ','"
                    )))
                }
            }
            _ => Err(SelectorError::Syntax(format!(
                "found '{lit}', expected: ',' or 'end of string'"
            ))),
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let (key, unary) = self.key_and_unary_operator()?;
        if let Some(op) = unary {
            return Requirement::new(&key, op, Vec::new());
        }
        let op = self.operator()?;
        let values = match op {
            Operator::In | Operator::NotIn => self.value_set()?,
            _ => self.exact_value()?,
        };
        Requirement::new(&key, op, values)
    }

    fn key_and_unary_operator(&mut self) -> Result<(String, Option<Operator>), String> {
        let mut op = None;
        let (mut tok, mut lit) = self.consume(Context::Values);
        if tok == Token::Not {
            op = Some(Operator::DoesNotExist);
            (tok, lit) = self.consume(Context::Values);
        }
        if tok != Token::Identifier {
            return Err(format!("found '{lit}', expected: identifier"));
        }
        validate_label_key(&lit).map_err(|e| invalid_value("<nil>", &lit, &e))?;
        let (next, _) = self.lookahead(Context::Values);
        if op.is_none() && matches!(next, Token::End | Token::Comma) {
            op = Some(Operator::Exists);
        }
        Ok((lit, op))
    }

    fn operator(&mut self) -> Result<Operator, String> {
        let (tok, lit) = self.consume(Context::KeyAndOperator);
        Ok(match tok {
            Token::In => Operator::In,
            Token::Equals => Operator::Equals,
            Token::DoubleEquals => Operator::DoubleEquals,
            Token::Greater => Operator::GreaterThan,
            Token::Less => Operator::LessThan,
            Token::NotIn => Operator::NotIn,
            Token::NotEquals => Operator::NotEquals,
            _ => {
                return Err(format!(
                    "found '{lit}', expected: in, notin, =, ==, !=, gt, lt"
                ))
            }
        })
    }

    /// `(a,b,c)`: the values come back sorted and without duplicates, as
    /// Kubernetes keeps them in a set.
    fn value_set(&mut self) -> Result<Vec<String>, String> {
        let (tok, lit) = self.consume(Context::Values);
        if tok != Token::OpenPar {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (tok, lit) = self.lookahead(Context::Values);
        let mut set = match tok {
            Token::Identifier | Token::Comma => {
                let set = self.identifier_list()?;
                if self.consume(Context::Values).0 != Token::ClosedPar {
                    return Err(format!("found '{lit}', expected: ')'"));
                }
                set
            }
            Token::ClosedPar => {
                self.consume(Context::Values);
                vec![String::new()]
            }
            _ => return Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        };
        set.sort();
        set.dedup();
        Ok(set)
    }

    /// A comma-separated list where empty entries stand for the empty value.
    fn identifier_list(&mut self) -> Result<Vec<String>, String> {
        let mut set = Vec::new();
        loop {
            let (tok, lit) = self.consume(Context::Values);
            match tok {
                Token::Identifier => {
                    set.push(lit);
                    let (next, lit) = self.lookahead(Context::Values);
                    match next {
                        Token::Comma => continue,
                        Token::ClosedPar => return Ok(set),
                        _ => return Err(format!("found '{lit}', expected: ',' or ')'")),
                    }
                }
                Token::Comma => {
                    if set.is_empty() {
                        set.push(String::new());
                    }
                    match self.lookahead(Context::Values).0 {
                        Token::ClosedPar => {
                            set.push(String::new());
                            return Ok(set);
                        }
                        Token::Comma => {
                            self.consume(Context::Values);
                            set.push(String::new());
                        }
                        _ => {}
                    }
                }
                _ => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
    }

    fn exact_value(&mut self) -> Result<Vec<String>, String> {
        let (tok, _) = self.lookahead(Context::Values);
        if matches!(tok, Token::End | Token::Comma) {
            return Ok(vec![String::new()]);
        }
        let (tok, lit) = self.consume(Context::Values);
        if tok == Token::Identifier {
            Ok(vec![lit])
        } else {
            Err(format!("found '{lit}', expected: identifier"))
        }
    }
}

// ---------------------------------------------------------------------------
// Label keys and values are checked by the same rules as object metadata
// (`IsQualifiedName`, `IsValidLabelValue`), messages joined as Kubernetes'
// selector parser joins them.

fn joined(errs: Vec<String>) -> Result<(), String> {
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("; "))
    }
}

fn validate_label_key(key: &str) -> Result<(), String> {
    joined(crate::validation::is_qualified_name(key))
}

fn validate_label_value(v: &str) -> Result<(), String> {
    joined(crate::validation::is_valid_label_value(v))
}

// ---------------------------------------------------------------------------
// Field selectors.

/// One `field=value` or `field!=value` term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    /// The field label, e.g. `spec.nodeName`.
    pub field: String,
    /// The value compared against, unescaped.
    pub value: String,
    /// `!=` rather than `=`/`==`.
    pub negated: bool,
}

/// A field selector: terms that must all hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<FieldRequirement>,
}

/// Fields every kind can be selected on.
const META_FIELDS: &[&str] = &["metadata.name", "metadata.namespace"];

const POD_FIELDS: &[&str] = &[
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.podIPs",
    "status.nominatedNodeName",
];

const EVENT_FIELDS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];

/// The kind-specific selectable fields, as the Kubernetes registries declare
/// them.
fn kind_fields(group: &str, kind: &str) -> &'static [&'static str] {
    match (group, kind) {
        ("", "Pod") => POD_FIELDS,
        ("", "Event") => EVENT_FIELDS,
        ("", "Secret") => &["type"],
        ("", "Node") => &["spec.unschedulable"],
        ("", "Namespace") => &["status.phase"],
        ("", "Service") => &["spec.clusterIP", "spec.type"],
        ("", "ReplicationController") => &["status.replicas"],
        ("apps" | "extensions", "ReplicaSet") => &["status.replicas"],
        ("batch", "Job") => &["status.successful"],
        ("certificates.k8s.io", "CertificateSigningRequest") => &["spec.signerName"],
        _ => &[],
    }
}

impl FieldSelector {
    /// Parse `a=b`, `a==b`, `a!=b`, comma-joined. `\,`, `\=` and `\\` escape
    /// those characters in values.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut parts = split_terms(s);
        parts.sort();
        let mut terms = Vec::new();
        for part in parts.into_iter().filter(|p| !p.is_empty()) {
            let bad = || SelectorError::FieldTerm {
                selector: s.to_string(),
                term: part.to_string(),
            };
            let (field, op, value) = split_term(part).ok_or_else(bad)?;
            terms.push(FieldRequirement {
                field: field.to_string(),
                value: unescape_value(value)?,
                negated: op == "!=",
            });
        }
        Ok(FieldSelector { terms })
    }

    /// The terms, sorted as Kubernetes sorts them.
    pub fn terms(&self) -> &[FieldRequirement] {
        &self.terms
    }

    /// Whether the selector has no terms.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Reject fields the kind does not support, with Kubernetes' message.
    pub fn check_supported(&self, group: &str, kind: &str) -> Result<(), SelectorError> {
        let supported = kind_fields(group, kind);
        match self.terms.iter().find(|t| {
            !META_FIELDS.contains(&t.field.as_str()) && !supported.contains(&t.field.as_str())
        }) {
            Some(t) => Err(SelectorError::UnsupportedField(t.field.clone())),
            None => Ok(()),
        }
    }

    /// Evaluate against an object. A missing field compares as `""`, booleans
    /// and numbers by their string form, and the few fields Kubernetes
    /// derives (an Event's `source`, a Pod's `status.podIP`, a Job's
    /// `status.successful`) the way it derives them.
    pub fn matches(&self, obj: &Value) -> bool {
        self.terms
            .iter()
            .all(|t| (field_value(obj, &t.field) == t.value) != t.negated)
    }
}

/// Split on commas not preceded by a backslash.
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' => {
                terms.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&s[start..]);
    terms
}

/// The first `!=`, `==` or `=` splits a term into field and value.
fn split_term(term: &str) -> Option<(&str, &str, &str)> {
    (0..term.len())
        .filter(|i| term.is_char_boundary(*i))
        .find_map(|i| {
            ["!=", "==", "="]
                .into_iter()
                .find(|op| term[i..].starts_with(op))
                .map(|op| (&term[..i], op, &term[i + op.len()..]))
        })
}

fn unescape_value(s: &str) -> Result<String, SelectorError> {
    let mut out = String::with_capacity(s.len());
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(SelectorError::Escape(format!("\\{c}")));
            }
            out.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            ',' | '=' => return Err(SelectorError::UnescapedRune(c as u32)),
            _ => out.push(c),
        }
    }
    if escaped {
        return Err(SelectorError::Escape("\\".into()));
    }
    Ok(out)
}

/// The string a selectable field has on an object.
fn field_value(obj: &Value, field: &str) -> String {
    match field {
        "source" => first_non_empty(&[
            path_string(obj, "source.component"),
            path_string(obj, "reportingComponent"),
        ]),
        "status.podIP" => first_non_empty(&[
            path_string(obj, "status.podIPs.0.ip"),
            path_string(obj, "status.podIP"),
        ]),
        // Kubernetes selects on the IPs' list only through its first entry.
        "status.podIPs" => String::new(),
        "status.successful" => or_default(path_string(obj, "status.succeeded"), "0"),
        "status.replicas" => or_default(path_string(obj, "status.replicas"), "0"),
        "spec.hostNetwork" | "spec.unschedulable" => or_default(path_string(obj, field), "false"),
        _ => path_string(obj, field),
    }
}

fn first_non_empty(candidates: &[String]) -> String {
    candidates
        .iter()
        .find(|s| !s.is_empty())
        .cloned()
        .unwrap_or_default()
}

fn or_default(s: String, default: &str) -> String {
    if s.is_empty() {
        default.to_string()
    } else {
        s
    }
}

/// Walk a dotted path (array indices as numbers); scalars become their
/// string form, anything else `""`.
fn path_string(obj: &Value, path: &str) -> String {
    let mut cur = obj;
    for seg in path.split('.') {
        let next = match cur {
            Value::Object(m) => m.get(seg),
            Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        };
        match next {
            Some(v) => cur = v,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
// Tests build their inputs by hand, so a failed unwrap is a failed test.
#[allow(clippy::unwrap_used)]
mod tests {
    const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
    const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn sel(s: &str) -> LabelSelector {
        LabelSelector::parse(s).unwrap()
    }

    fn err(s: &str) -> String {
        LabelSelector::parse(s).unwrap_err().to_string()
    }

    #[test]
    fn parses_every_operator_and_prints_canonically_sorted_by_key() {
        let s = sel("tier in (web, api),env!=prod,app=nginx,!canary,track,v>2,w<9,x==y");
        assert_eq!(
            s.to_string(),
            "app=nginx,!canary,env!=prod,tier in (api,web),track,v>2,w<9,x==y"
        );
    }

    #[test]
    fn empty_string_selects_everything() {
        let s = sel("");
        assert!(s.is_empty());
        assert!(s.matches(None));
        assert_eq!(s.to_string(), "");
        assert!(sel("  ").is_empty());
    }

    #[test]
    fn value_sets_are_sorted_and_deduplicated_like_a_kubernetes_set() {
        assert_eq!(sel("x in (b,a,b)").to_string(), "x in (a,b)");
        // Kubernetes' own example: empty entries stand for the empty value.
        assert_eq!(
            sel("x in (foo,,baz),y,z notin ()").to_string(),
            "x in (,baz,foo),y,z notin ()"
        );
        assert_eq!(sel("a=").to_string(), "a=");
    }

    #[test]
    fn in_and_notin_are_plain_values_inside_parentheses() {
        let s = sel("a in (in,notin)");
        assert_eq!(s.requirements()[0].values(), ["in", "notin"]);
    }

    #[test]
    fn syntax_errors_use_kubernetes_messages() {
        assert_eq!(err("a,"), "found '', expected: identifier after ','");
        assert_eq!(
            err(",a"),
            "found ',', expected: !, identifier, or 'end of string'"
        );
        assert_eq!(
            err("a b"),
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert_eq!(
            err("a in b"),
            "unable to parse requirement: found 'b' expected: '('"
        );
        assert_eq!(
            err("a in (b c)"),
            "unable to parse requirement: found 'c', expected: ',' or ')'"
        );
        assert_eq!(err("a=b=c"), "found '=', expected: ',' or 'end of string'");
        assert_eq!(
            err("a=(b)"),
            "unable to parse requirement: found '(', expected: identifier"
        );
        assert_eq!(
            err("!"),
            "unable to parse requirement: found '', expected: identifier"
        );
    }

    #[test]
    fn invalid_keys_and_values_are_rejected_with_validation_messages() {
        assert_eq!(
            err("-a=b"),
            format!("unable to parse requirement: <nil>: Invalid value: \"-a\": name part {QUALIFIED_NAME_MSG}")
        );
        assert_eq!(
            err("a=b_"),
            format!("unable to parse requirement: values[0][a]: Invalid value: \"b_\": {LABEL_VALUE_MSG}")
        );
        assert!(err("Example.com/a=b").contains("prefix part a lowercase RFC 1123 subdomain"));
        assert!(err("a/b/c").contains("a qualified name must consist"));
        assert!(err(&format!("{}=b", "k".repeat(64)))
            .contains("name part must be no more than 63 characters"));
        assert!(
            err(&format!("a={}", "v".repeat(64))).contains("must be no more than 63 characters")
        );
        assert!(err("a>b").contains("for 'Gt', 'Lt' operators, the value must be an integer"));
        // A valid prefixed key.
        assert_eq!(
            sel("app.kubernetes.io/name=web").to_string(),
            "app.kubernetes.io/name=web"
        );
    }

    #[test]
    fn matching_follows_kubernetes_semantics() {
        let l = labels(json!({"app": "web", "tier": "front", "n": "5"}));
        assert!(sel("app=web").matches(Some(&l)));
        assert!(sel("app==web,tier").matches(Some(&l)));
        assert!(!sel("app!=web").matches(Some(&l)));
        assert!(sel("tier in (front,back)").matches(Some(&l)));
        assert!(!sel("tier notin (front)").matches(Some(&l)));
        assert!(sel("!canary").matches(Some(&l)));
        assert!(!sel("!app").matches(Some(&l)));
        assert!(sel("n>4,n<6").matches(Some(&l)));
        assert!(
            !sel("app>4").matches(Some(&l)),
            "non-numeric label never compares"
        );
        assert!(!sel("missing>4").matches(Some(&l)));
    }

    #[test]
    fn notin_and_not_equals_match_objects_without_the_label() {
        // Kubernetes: "notin" also selects objects that lack the key.
        let l = labels(json!({"app": "web"}));
        assert!(sel("env notin (prod)").matches(Some(&l)));
        assert!(sel("env!=prod").matches(Some(&l)));
        assert!(sel("env notin (prod)").matches(None));
        assert!(!sel("env in (prod)").matches(None));
        assert!(!sel("env").matches(None));
    }

    #[test]
    fn matches_object_reads_metadata_labels() {
        let pod = json!({"metadata": {"name": "p", "labels": {"app": "web"}}});
        assert!(sel("app=web").matches_object(&pod));
        assert!(!sel("app=db").matches_object(&pod));
        assert!(sel("app!=db").matches_object(&json!({"metadata": {"name": "bare"}})));
    }

    #[test]
    fn json_selector_null_matches_nothing_and_empty_matches_everything() {
        let null = LabelSelector::from_json(&Value::Null).unwrap();
        assert!(null.matches_nothing());
        assert!(!null.is_empty());
        assert!(!null.matches(Some(&labels(json!({"a": "b"})))));
        let empty = LabelSelector::from_json(&json!({})).unwrap();
        assert!(empty.is_empty());
        assert!(empty.matches(None));
        let empty_lists =
            LabelSelector::from_json(&json!({"matchLabels": {}, "matchExpressions": []})).unwrap();
        assert!(empty_lists.is_empty());
    }

    #[test]
    fn json_selector_combines_match_labels_and_expressions() {
        let s = LabelSelector::from_json(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["b", "a"]},
                {"key": "env", "operator": "NotIn", "values": ["prod"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "track", "operator": "Exists"}
            ]
        }))
        .unwrap();
        assert_eq!(
            s.to_string(),
            "app=web,!canary,env notin (prod),tier in (a,b),track"
        );
        let l = labels(json!({"app": "web", "tier": "a", "track": "x"}));
        assert!(s.matches(Some(&l)));
    }

    #[test]
    fn json_selector_errors() {
        let bad_op =
            json!({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["b"]}]});
        assert_eq!(
            LabelSelector::from_json(&bad_op).unwrap_err().to_string(),
            "\"Equals\" is not a valid label selector operator"
        );
        let empty_in = json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]});
        assert_eq!(
            LabelSelector::from_json(&empty_in).unwrap_err().to_string(),
            "values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty"
        );
        let exists_with_values =
            json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]});
        assert!(LabelSelector::from_json(&exists_with_values)
            .unwrap_err()
            .to_string()
            .contains("values set must be empty"));
        assert!(LabelSelector::from_json(&json!("app=web")).is_err());
        assert!(LabelSelector::from_json(&json!({"matchLabels": {"a": 1}})).is_err());
    }

    #[test]
    fn field_selector_parses_and_sorts_terms() {
        let f =
            FieldSelector::parse("status.phase!=Failed,spec.nodeName==n1,metadata.name=a").unwrap();
        let fields: Vec<_> = f
            .terms()
            .iter()
            .map(|t| (t.field.as_str(), t.value.as_str(), t.negated))
            .collect();
        assert_eq!(
            fields,
            [
                ("metadata.name", "a", false),
                ("spec.nodeName", "n1", false),
                ("status.phase", "Failed", true)
            ]
        );
        assert!(FieldSelector::parse("").unwrap().is_empty());
    }

    #[test]
    fn field_selector_escapes_and_errors() {
        let f = FieldSelector::parse(r"metadata.name=a\,b\=c\\d").unwrap();
        assert_eq!(f.terms()[0].value, r"a,b=c\d");
        assert_eq!(
            FieldSelector::parse("spec.nodeName")
                .unwrap_err()
                .to_string(),
            "invalid selector: 'spec.nodeName'; can't understand 'spec.nodeName'"
        );
        assert_eq!(
            FieldSelector::parse(r"a=b\x").unwrap_err().to_string(),
            r"invalid field selector: invalid escape sequence: \x"
        );
        assert_eq!(
            FieldSelector::parse("a=b=c").unwrap_err().to_string(),
            "invalid field selector: unescaped character in value: 61"
        );
    }

    #[test]
    fn unsupported_fields_are_rejected_per_kind() {
        let f = FieldSelector::parse("spec.nodeName=n1").unwrap();
        assert!(f.check_supported("", "Pod").is_ok());
        assert_eq!(
            f.check_supported("", "ConfigMap").unwrap_err().to_string(),
            "field label not supported: spec.nodeName"
        );
        let meta = FieldSelector::parse("metadata.name=x,metadata.namespace=y").unwrap();
        assert!(meta.check_supported("apps", "Deployment").is_ok());
        let ev =
            FieldSelector::parse("involvedObject.kind=Pod,source=kubelet,type=Warning").unwrap();
        assert!(ev.check_supported("", "Event").is_ok());
        assert!(FieldSelector::parse("type=Opaque")
            .unwrap()
            .check_supported("", "Secret")
            .is_ok());
        assert!(FieldSelector::parse("spec.unschedulable=true")
            .unwrap()
            .check_supported("", "Node")
            .is_ok());
        assert!(FieldSelector::parse("status.successful=1")
            .unwrap()
            .check_supported("batch", "Job")
            .is_ok());
    }

    #[test]
    fn missing_fields_compare_as_empty() {
        // `kubectl get pods --field-selector spec.nodeName=` lists unbound pods.
        let unbound = FieldSelector::parse("spec.nodeName=").unwrap();
        let bound = FieldSelector::parse("spec.nodeName!=").unwrap();
        let pending = json!({"metadata": {"name": "p"}, "spec": {}});
        let running = json!({"metadata": {"name": "q"}, "spec": {"nodeName": "n1"}});
        assert!(unbound.matches(&pending));
        assert!(!unbound.matches(&running));
        assert!(bound.matches(&running));
        assert!(!bound.matches(&pending));
    }

    #[test]
    fn booleans_and_numbers_compare_by_string_form() {
        let host = json!({"spec": {"hostNetwork": true}});
        assert!(FieldSelector::parse("spec.hostNetwork=true")
            .unwrap()
            .matches(&host));
        // Kubernetes defaults an unset hostNetwork to "false".
        assert!(FieldSelector::parse("spec.hostNetwork=false")
            .unwrap()
            .matches(&json!({"spec": {}})));
        let job = json!({"status": {"succeeded": 3}});
        assert!(FieldSelector::parse("status.successful=3")
            .unwrap()
            .matches(&job));
        assert!(FieldSelector::parse("status.successful=0")
            .unwrap()
            .matches(&json!({})));
        let rs = json!({"status": {"replicas": 2}});
        assert!(FieldSelector::parse("status.replicas!=0")
            .unwrap()
            .matches(&rs));
    }

    #[test]
    fn event_source_is_the_component_or_reporting_controller() {
        let ev = json!({
            "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "default"},
            "source": {"component": "kubelet", "host": "n1"},
            "reason": "Started", "type": "Normal"
        });
        let f = FieldSelector::parse(
            "involvedObject.name=web-1,involvedObject.kind=Pod,source=kubelet",
        )
        .unwrap();
        assert!(f.matches(&ev));
        assert!(!FieldSelector::parse("source=scheduler")
            .unwrap()
            .matches(&ev));
        let new_style = json!({"reportingComponent": "default-scheduler", "source": {}});
        assert!(FieldSelector::parse("source=default-scheduler")
            .unwrap()
            .matches(&new_style));
        assert!(FieldSelector::parse("reportingComponent=default-scheduler")
            .unwrap()
            .matches(&new_style));
    }

    #[test]
    fn pod_ip_uses_the_first_pod_ip() {
        let pod = json!({"status": {"podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}]}});
        assert!(FieldSelector::parse("status.podIP=10.0.0.1")
            .unwrap()
            .matches(&pod));
        assert!(FieldSelector::parse("status.podIP=10.0.0.2")
            .map(|f| !f.matches(&pod))
            .unwrap());
    }
}
