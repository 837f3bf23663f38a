//! Host bindings for the Spin interfaces this host implements, generated from the WIT that
//! `scripts/fetch_wit.py` copies out of spin-sdk into `wit/deps/spin`.

wasmtime::component::bindgen!({
    path: "../wit/deps/spin",
    inline: "
        package sbert:host;

        world spin-imports {
            import fermyon:spin/key-value@2.0.0;
            import fermyon:spin/llm@2.0.0;
            import fermyon:spin/variables@2.0.0;
        }
    ",
    // Key-value backends do I/O (SQLite on the blocking pool, Redis over the network): async keeps
    // the executor free while they wait.
    imports: { "fermyon:spin/key-value": async | trappable },
    with: { "fermyon:spin/key-value.store": crate::key_value::OpenStore },
});
