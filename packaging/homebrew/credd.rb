# Homebrew formula for credd (macOS): builds both binaries from source with Rust.
# Homebrew installs formulae from taps only:
#   brew tap-new you/credd && cp packaging/homebrew/credd.rb "$(brew --repo you/credd)/Formula/"
#   brew install --HEAD you/credd/credd
class Credd < Formula
  desc "Caches and refreshes cloud credentials for Claude Code and the cloud SDKs"
  homepage "https://github.com/credd/credd"
  license any_of: ["MIT", "Apache-2.0"]
  head "https://github.com/credd/credd.git", branch: "main"

  depends_on "rust" => :build

  def install
    system "cargo", "install", *std_cargo_args(path: "daemon")
    system "cargo", "install", "--profile", "client", *std_cargo_args(path: "helper-cli")
    man1.install "packaging/man/credd.1"
    bash_completion.install "packaging/completions/credd.bash" => "credd"
    zsh_completion.install "packaging/completions/_credd"
    fish_completion.install "packaging/completions/credd.fish"
  end

  service do
    run opt_bin/"credd-daemon"
    keep_alive true
  end

  test do
    assert_match "credd", shell_output("#{bin}/credd --version")
  end
end
