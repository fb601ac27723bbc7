//! containerd-shim-voidbox-v2: the containerd runtime `io.containerd.voidbox.v2`.

fn main() {
    voidbox_shim::shim::main()
}
