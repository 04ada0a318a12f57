// The message JSON.parse throws for a syntax error, as V8 (Node 24) words it, from any engine.
//
// A config that is not JSON is refused with code 6 and JSON.parse's own message. The plugin runs
// on bun (JavaScriptCore), whose JSON.parse words its errors differently ("JSON Parse error:
// Expected '}'") and names no position. So that the message is the same whichever runtime the
// plugin is built for, it comes from this scanner: V8's wording, its position (UTF-16 units),
// line and column, and its excerpt of the text around an unexpected character. Only called after
// JSON.parse has failed; test/src/json-syntax.test.ts compares it with Node's JSON.parse.

/** Characters of context V8 quotes on each side of an unexpected character. */
const CONTEXT = 10;
/** Texts shorter than this are quoted whole. */
const MIN_LENGTH_FOR_CONTEXT = 2 * CONTEXT + 1;
/** Whole texts that V8 names without an unexpected token (what String() of a non-string gives). */
const SPECIAL_TEXTS = new Set(['[object Object]', 'undefined', 'Infinity', 'NaN']);

const END = -1;

class SyntaxFault {
  constructor(readonly message: string) {}
}

type Token = 'end' | 'number' | 'string' | 'other';

/** How V8 classifies a character where it reports an unexpected one. */
function tokenOf(code: number): Token {
  if (code === END) return 'end';
  if (code === 0x22) return 'string';
  if (code === 0x2d || (code >= 0x30 && code <= 0x39)) return 'number';
  return 'other';
}

const isDigit = (code: number) => code >= 0x30 && code <= 0x39;
const isWhitespace = (code: number) => code === 0x20 || code === 0x09 || code === 0x0a || code === 0x0d;
const isHex = (code: number) => isDigit(code) || (code >= 0x41 && code <= 0x46) || (code >= 0x61 && code <= 0x66);
/** Characters that may continue a number after a leading 0. */
const isNumberPart = (code: number) => isDigit(code) || code === 0x2e || code === 0x65 || code === 0x45 || code === 0x2d || code === 0x2b;

class Scanner {
  at = 0;
  constructor(readonly text: string) {}

  code(at = this.at): number {
    return at < this.text.length ? this.text.charCodeAt(at) : END;
  }

  skipWhitespace(): number {
    while (isWhitespace(this.code())) this.at++;
    return this.code();
  }

  /** "WHAT in JSON at position P (line L column C)" at the current position. */
  located(what: string, where = 'in JSON'): SyntaxFault {
    let line = 1;
    let lineStart = 0;
    for (let i = 0; i < this.at; i++) {
      const c = this.text.charCodeAt(i);
      if (c === 0x0d && i < this.at - 1 && this.text.charCodeAt(i + 1) === 0x0a) i++;
      const d = this.text.charCodeAt(i);
      if (d === 0x0d || d === 0x0a) {
        line++;
        lineStart = i + 1;
      }
    }
    return new SyntaxFault(`${what} ${where} at position ${this.at} (line ${line} column ${1 + this.at - lineStart})`);
  }

  /** The character at the current position is not what the grammar allows here. */
  unexpected(): SyntaxFault {
    const code = this.code();
    switch (tokenOf(code)) {
      case 'end':
        return new SyntaxFault('Unexpected end of JSON input');
      case 'number':
        return this.located('Unexpected number');
      case 'string':
        return this.located('Unexpected string');
      default:
        return this.unexpectedToken();
    }
  }

  unexpectedToken(): SyntaxFault {
    const { text, at } = this;
    if (SPECIAL_TEXTS.has(text)) return new SyntaxFault(`"${text}" is not valid JSON`);
    const token = text[at]!;
    if (text.length < MIN_LENGTH_FOR_CONTEXT) return new SyntaxFault(`Unexpected token '${token}', "${text}" is not valid JSON`);
    if (at < CONTEXT) return new SyntaxFault(`Unexpected token '${token}', "${text.slice(0, at + CONTEXT)}"... is not valid JSON`);
    if (at < text.length - CONTEXT) return new SyntaxFault(`Unexpected token '${token}', ..."${text.slice(at - CONTEXT, at + CONTEXT)}"... is not valid JSON`);
    return new SyntaxFault(`Unexpected token '${token}', ..."${text.slice(at - CONTEXT)}" is not valid JSON`);
  }

  /** Expect `code` after optional whitespace; else `message` (or the unexpected character). */
  expect(code: number, message?: string): void {
    if (this.skipWhitespace() === code) {
      this.at++;
      return;
    }
    throw message === undefined ? this.unexpected() : this.located(message);
  }

  /** Skip whitespace, then take `code` if it is next. */
  check(code: number): boolean {
    if (this.skipWhitespace() !== code) return false;
    this.at++;
    return true;
  }

  /** Scan a string whose opening quote is behind the cursor. */
  string(): void {
    for (;;) {
      const c = this.code();
      if (c === END) throw this.located('Unterminated string');
      if (c === 0x22) {
        this.at++;
        return;
      }
      if (c < 0x20) throw this.located('Bad control character in string literal');
      if (c !== 0x5c) {
        this.at++;
        continue;
      }
      this.at++;
      const escape = this.code();
      if (escape === END || escape > 0xff) throw this.unexpected();
      if (escape === 0x75) {
        for (let i = 0; i < 4; i++) {
          this.at++;
          if (!isHex(this.code())) throw this.located('Bad Unicode escape');
        }
      } else if (!'"\\/bfnrt'.includes(String.fromCharCode(escape))) {
        throw this.located('Bad escaped character');
      }
      this.at++;
    }
  }

  number(): void {
    let negative = false;
    let c = this.code();
    if (c === 0x2d) {
      negative = true;
      c = this.code(++this.at);
    }
    if (c === 0x30) {
      c = this.code(++this.at);
      if (isNumberPart(c)) {
        if (isDigit(c)) throw this.located('Unexpected number');
      } else if (!negative) {
        return;
      }
    } else {
      const start = this.at;
      while (isDigit(this.code())) this.at++;
      if (this.at === start) throw this.located('No number after minus sign');
    }
    if (this.code() === 0x2e) {
      if (!isDigit(this.code(++this.at))) throw this.located('Unterminated fractional number');
      while (isDigit(this.code())) this.at++;
    }
    if ((this.code() | 0x20) === 0x65) {
      c = this.code(++this.at);
      if (c === 0x2d || c === 0x2b) c = this.code(++this.at);
      if (!isDigit(c)) throw this.located('Exponent part is missing a number');
      while (isDigit(this.code())) this.at++;
    }
  }

  /** true, false or null, whose first letter is at the cursor. */
  literal(word: string): void {
    this.at++;
    for (let i = 1; i < word.length; i++, this.at++) {
      if (this.code() !== word.charCodeAt(i)) throw this.unexpected();
    }
  }

  /** One value, iteratively (a deep text must not overflow this stack either). */
  value(): void {
    // Open containers: '{' or '['; after each member, what may follow depends on the innermost.
    const open: number[] = [];
    for (;;) {
      const c = this.skipWhitespace();
      if (c === 0x22) {
        this.at++;
        this.string();
      } else if (c === 0x2d || isDigit(c)) {
        this.number();
      } else if (c === 0x7b) {
        this.at++;
        if (!this.check(0x7d)) {
          open.push(0x7b);
          this.expect(0x22, "Expected property name or '}'");
          this.string();
          this.expect(0x3a, "Expected ':' after property name");
          continue;
        }
      } else if (c === 0x5b) {
        this.at++;
        if (!this.check(0x5d)) {
          open.push(0x5b);
          continue;
        }
      } else if (c === 0x74) {
        this.literal('true');
      } else if (c === 0x66) {
        this.literal('false');
      } else if (c === 0x6e) {
        this.literal('null');
      } else {
        throw this.unexpected();
      }
      // A value is complete: close the containers it completes, or go on to the next member.
      for (;;) {
        const inner = open[open.length - 1];
        if (inner === undefined) return;
        if (this.check(0x2c)) {
          if (inner === 0x7b) {
            this.expect(0x22, 'Expected double-quoted property name');
            this.string();
            this.expect(0x3a, "Expected ':' after property name");
          }
          break;
        }
        if (inner === 0x7b) this.expect(0x7d, "Expected ',' or '}' after property value");
        else this.expect(0x5d, "Expected ',' or ']' after array element");
        open.pop();
      }
    }
  }
}

/** V8's JSON.parse message for `text`, or undefined when `text` is valid JSON. */
export function jsonSyntaxError(text: string): string | undefined {
  const scanner = new Scanner(text);
  try {
    scanner.value();
    if (scanner.skipWhitespace() !== END) throw scanner.located('Unexpected non-whitespace character', 'after JSON');
    return undefined;
  } catch (err) {
    if (err instanceof SyntaxFault) return err.message;
    throw err;
  }
}
