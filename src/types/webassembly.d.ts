// @types/node does not declare the WebAssembly global that Node provides (checked with @types/node 24),
// and the DOM lib would bring browser globals that do not exist here. Only what this project calls is declared.
declare global {
  namespace WebAssembly {
    class Module {
      constructor(bytes: ArrayBufferView | ArrayBuffer);
    }
    class Instance {
      constructor(module: Module, imports?: Record<string, Record<string, unknown>>);
      readonly exports: Record<string, unknown>;
    }
    class Memory {
      constructor(descriptor: { initial: number; maximum?: number; shared?: boolean });
      readonly buffer: ArrayBuffer;
    }
    interface WebAssemblyInstantiatedSource {
      module: Module;
      instance: Instance;
    }
    function validate(bytes: ArrayBufferView | ArrayBuffer): boolean;
    function compile(bytes: ArrayBufferView | ArrayBuffer): Promise<Module>;
    function instantiate(
      bytes: ArrayBufferView | ArrayBuffer,
      imports?: Record<string, Record<string, unknown>>,
    ): Promise<WebAssemblyInstantiatedSource>;
    function instantiate(
      module: Module,
      imports?: Record<string, Record<string, unknown>>,
    ): Promise<Instance>;
  }
}

export {};
