// sasl-plain ships no types; this is the part of its API that vmgate uses.
declare module 'sasl-plain' {
  interface PlainCredentials {
    authzid?: string;
    username: string;
    password: string;
  }
  class PlainMechanism {
    readonly name: 'PLAIN';
    readonly clientFirst: true;
    response(cred: PlainCredentials): string;
    challenge(chal: string): this;
  }
  export = PlainMechanism;
}
