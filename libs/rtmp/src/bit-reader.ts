import { RtmpProtocolError } from './errors.js';

/** MSB-first bit reader with Exp-Golomb codes; throws RtmpProtocolError('bad_parameter_set') past the end. */
export class BitReader {
  private bit = 0;
  constructor(
    private readonly buf: Buffer,
    private readonly what: string,
  ) {}
  get bitPosition(): number {
    return this.bit;
  }
  private fail(): never {
    throw new RtmpProtocolError(
      'bad_parameter_set',
      `${this.what} ends early (bit ${this.bit} of ${this.buf.length * 8})`,
    );
  }
  u1(): number {
    const byte = this.bit >> 3;
    if (byte >= this.buf.length) this.fail();
    const v = (this.buf[byte]! >> (7 - (this.bit & 7))) & 1;
    this.bit++;
    return v;
  }
  u(n: number): number {
    let v = 0;
    for (let i = 0; i < n; i++) v = v * 2 + this.u1();
    return v;
  }
  skip(n: number): void {
    if (this.bit + n > this.buf.length * 8) this.fail();
    this.bit += n;
  }
  ue(): number {
    let zeros = 0;
    while (this.u1() === 0) {
      if (++zeros > 31) throw new RtmpProtocolError('bad_parameter_set', `${this.what}: Exp-Golomb code too long`);
    }
    return 2 ** zeros - 1 + this.u(zeros);
  }
  se(): number {
    const k = this.ue();
    return k & 1 ? (k + 1) / 2 : -(k / 2);
  }
}
