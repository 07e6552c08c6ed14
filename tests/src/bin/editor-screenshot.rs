//! Opens Latent Trio's editor in an X11 window, plays a few bars so the
//! pattern views and the playhead have something to show, and saves a
//! screenshot as a PPM image. Run it under Xvfb:
//!
//! ```text
//! xvfb-run -s "-screen 0 2400x1800x24" cargo run -p latent_trio_host --bin editor-screenshot -- shot.ppm 1.0
//! ```
//!
//! Further arguments `"Parameter Name=value"` set parameters first (plain
//! values), e.g. `"Progression=9" "Drums Humanize=1"`.

use std::io::Write;
use std::time::{Duration, Instant};

use latent_trio_host::{Bundle, clap_bundle};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{ConnectionExt, CreateWindowAux, ImageFormat, WindowClass};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = args.next().unwrap_or_else(|| "editor.ppm".into());
    let scale: f64 = args.next().map_or(Ok(1.0), |s| s.parse())?;

    let bundle = Bundle::load(&clap_bundle())?;
    let mut instance = bundle.instantiate()?;
    instance.activate(48_000.0, 512);
    for setting in args {
        let (name, value) = setting
            .split_once('=')
            .ok_or_else(|| format!("\"{setting}\" is not Name=value"))?;
        instance.set(name, value.parse()?);
    }
    // Let the models load and a phrase arrive before the window opens.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        instance.play(4_800, 512);
        std::thread::sleep(Duration::from_millis(20));
    }

    let (connection, screen_number) = x11rb::connect(None)?;
    let screen = &connection.setup().roots[screen_number];
    let parent = connection.generate_id()?;
    let (width, height) = (2_400u16, 1_800u16);
    connection.create_window(
        screen.root_depth,
        parent,
        screen.root,
        0,
        0,
        width,
        height,
        0,
        WindowClass::INPUT_OUTPUT,
        0,
        &CreateWindowAux::new().background_pixel(screen.black_pixel),
    )?;
    connection.map_window(parent)?;
    connection.flush()?;

    // SAFETY: `parent` lives until the end of main, after the editor closes.
    let (editor_width, editor_height) = unsafe { instance.open_editor(u64::from(parent), scale) }?;
    println!("editor size {editor_width}x{editor_height} at scale {scale}");
    // Keep playing while the editor draws: the playhead moves.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(4) {
        instance.play(2_400, 512);
        std::thread::sleep(Duration::from_millis(25));
    }
    let (w, h) = (
        editor_width.min(u32::from(width)) as u16,
        editor_height.min(u32::from(height)) as u16,
    );
    let image = connection
        .get_image(ImageFormat::Z_PIXMAP, parent, 0, 0, w, h, !0)?
        .reply()?;
    let mut file = std::io::BufWriter::new(std::fs::File::create(&out)?);
    write!(file, "P6\n{w} {h}\n255\n")?;
    // 32 bits per pixel, blue-green-red-unused on little-endian servers.
    for pixel in image.data.chunks_exact(4) {
        file.write_all(&[pixel[2], pixel[1], pixel[0]])?;
    }
    file.flush()?;
    println!("wrote {out}");
    instance.close_editor();
    // The plugin goes before the window it was embedded in.
    drop(instance);
    drop(connection);
    Ok(())
}
