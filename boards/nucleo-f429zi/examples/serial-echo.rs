//! Echoes every byte that arrives on the ST-LINK's virtual COM port, and logs how many:
//! the first check of the serial link before the `remote` firmware uses it.
//!
//! `cargo run --release --example serial-echo`, then on the PC
//! `picocom -b 115200 /dev/ttyACM0`: what you type comes back.
#![no_std]
#![no_main]

use smolsock_board::Serial;

#[cortex_m_rt::entry]
fn main() -> ! {
    let (_device, clock, _seed, mut serial) = nucleo_f429zi::init_with_serial();
    serial.write_all(b"nucleo-f429zi: serial echo\r\n");
    let mut buf = [0u8; 64];
    let mut total: u64 = 0;
    loop {
        let n = serial.read(&mut buf);
        if let Some(bytes) = buf.get(..n).filter(|b| !b.is_empty()) {
            serial.write_all(bytes);
            total += bytes.len() as u64;
            defmt::info!("serial: {} bytes echoed ({} in all)", bytes.len(), total);
        }
        if !serial.rx_pending() {
            clock.tick(None);
        }
    }
}
