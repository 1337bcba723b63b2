using BpfJit.IlEmitter;
using System.Diagnostics;
using BpfJit.Cli.Hosting;
using BpfJit.Frontend;
using BpfJit.Runtime;
using BpfJit.Runtime.Checked;
using BpfJit.Cli.Output;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;

namespace BpfJit.Cli.Commands;

/// <summary><c>bpfjit run PROGRAM --proto P --from A --to B [--ifindex N] [--scenario FILE]</c>: an SK_LOOKUP or SK_REUSEPORT program.</summary>
public static class RunCommand
{
    /// <summary>The verb's description.</summary>
    public static CommandInfo Info { get; } = new("run", "test-run one SK_LOOKUP or SK_REUSEPORT program on a lookup given on the command line", """
        usage: bpfjit run OBJECT.o|SCENARIO.json|FILE|FILTER.cbpf [--program NAME] --proto tcp|udp --from IP:PORT --to IP:PORT
                          [--ifindex N] [--scenario FILE.json] [--cgroup MAP:INDEX=CGROUP,...] [--engine interpreter|jit]
                          [--no-verify] [--members N] [--hash N] [--payload HEX] [--type sk_lookup|sk_reuseport] [--repeat N]
                          [--dump-maps] [--json]

        Runs one program once on the struct bpf_sk_lookup a packet from --from to --to would give
        (IPv6 end points as [ADDR]:PORT; --ifindex sets ingress_ifindex, default 1) and prints the
        return value and the socket the program selected with bpf_sk_assign, by name and cookie.
        OBJECT.o is an ELF object: --program picks a program (default the first SK_LOOKUP one); its
        maps are created from the object, or taken by name from --scenario's maps. With --scenario
        (or a SCENARIO.json in place of the object) the scenario's sockets and map contents are set
        up first; a scenario alone runs its first attached program, or the one --program names.
        FILE is an assembly (.asm), raw (.bin) or conformance (.data) program without maps, SK_LOOKUP
        unless --type sk_reuseport says it is an SK_REUSEPORT program.
        FILTER.cbpf is a classic BPF reuseport filter (SO_ATTACH_REUSEPORT_CBPF) in tcpdump -ddd's text
        form (the count, then "code jt jf k" per line or comma): checked as the kernel checks it, attached
        to --members N new sockets on --to and run once; it prints the value it returned and the member
        that receives (the value indexes the members; past them, the hash picks).
        An object's SK_REUSEPORT program (--program NAME; the default when the object has no SK_LOOKUP
        program) runs for a reuseport group on --to: --members N sockets (default 2, member0..; TCP
        listeners or bound UDP sockets per --proto, SO_REUSEPORT), or the --scenario's group on --to.
        Its REUSEPORT_SOCKARRAY, SOCKMAP and SOCKHASH maps get member i at key i (not with --scenario:
        the scenario fills them). It runs once on struct sk_reuseport_md (sk the member the lookup meets first, the newest, as Linux; hash
        --hash N or else the runtime's 4-tuple hash; data..data_end the packet's TCP or UDP header the runtime builds, then
        --payload HEX's bytes) and prints the return value and what the group does with it: the selected
        member, the member the hash picks when SK_PASS selected none, or a drop:
                 retval 1 (SK_PASS), selected member1 (cookie 2)
        --json:  {"program": "select_sock_b", "programType": "sk_reuseport", ..., "context": {..., "hash": 1234,
                  "sk": "member1"}, "members": [{"name": "member0", "cookie": 1}, ...], "retval": 1,
                  "verdict": "SK_PASS", "outcome": "select"|"hash"|"drop", "selected": {...}|null,
                  "socket": {"name": "member1", "cookie": 2}|null}      (socket: the member that receives)
        Programs are verified before they run. --no-verify runs the program (FILE's, or OBJECT's) without
        the verifier, as a sandbox for programs it rejects: the interpreter checks every access anyway, and
        --engine jit compiles in checked mode (every access and helper argument checked). A fault prints
        one line on stderr naming the instruction and exits 1.
        --repeat N runs the program N times on the same context (the selection reset before each run, as
        BPF_PROG_TEST_RUN's repeat does) and prints the average time per run as the test run's 'duration'
        and bpftool's 'duration (average)'. --dump-maps prints each map of the program after the run(s),
        as 'bpftool map dump' does: 'key: 06 00 00 00 50 00 00 00  value: 05 00 00 00 00 00 00 00',
        then 'Found N elements'.

        output:  retval 1 (SK_PASS), socket nginx-ssl (cookie 2)
        --json:  {"program": "dispatcher", "source": "dispatcher.json: dispatcher", "engine": "jit",
                  "context": {"proto": "tcp", "family": "inet", "from": "10.0.0.1:50000",
                              "to": "1.2.3.1:443", "ifindex": 1},
                  "retval": 1, "verdict": "SK_PASS", "noReuseport": false,
                  "socket": {"name": "nginx-ssl", "cookie": 2}}          ("socket": null when none)
                 with --repeat: "repeat": 1000, "durationNs": 85 (average per run);
                 with --dump-maps: "maps": [{"name": "counters", "type": "Hash", "id": 3, "elements":
                 [{"key": ["0x06", ...], "value": ["0x05", ...]}]}] (per-CPU maps: "values": [{"cpu": 0, "value": [...]}])
        Exit code 0 when the program ran (whatever it returned), 1 when the verifier rejected it or the
        run faulted, 2 for bad usage or a bad file (one line on stderr naming the file).

        examples:
          bpfjit run examples/dispatcher.json --proto tcp --from 10.0.0.1:5555 --to 1.2.3.1:443
          bpfjit run tests/programs/dispatcher.o --scenario examples/dispatcher.json --proto tcp --from 10.0.0.1:5555 --to 1.2.3.4:80 --json
          bpfjit run tests/programs/redir_ip6.o --proto tcp --from [fd00::2]:5555 --to [fd00::1]:80 --engine jit
          bpfjit run examples/past-ctx.asm --no-verify --proto tcp --from 10.0.0.1:5555 --to 1.2.3.1:443
          bpfjit run tests/programs/hash_counter.o --proto tcp --from 10.0.0.1:5555 --to 1.2.3.1:80 --repeat 1000 --dump-maps
          bpfjit run tests/scenarios/progs/test_sk_lookup.o --program select_sock_b --proto udp --from 127.0.0.9:40000 --to 127.0.0.1:9000 --members 3
          bpfjit run examples/reuseport-source-port.cbpf --proto udp --from 127.0.0.9:40001 --to 127.0.0.1:9000 --members 2
        """, Run)
    {
        Operands = "PROGRAM",
        Options =
        [
            Opt.Value("--program", "NAME", "the object's or scenario's program (default the first SK_LOOKUP one)"),
            .. PacketOptions.Declare(),
            Opt.Value("--scenario", "FILE.json", "sockets and map contents to set up first"),
            CgroupOption.Declare(),
            Opt.Value("--engine", "ENGINE", "interpreter (default) or jit", "interpreter", "jit"),
            Opt.Flag("--no-verify", "run without the verifier, on a checking engine"),
            Opt.Value("--members", "N", "SK_REUSEPORT: sockets in the packet's reuseport group (default 2)"),
            .. ReuseportGroupSetup.Declare(),
            Opt.Value("--repeat", "N", "run N times and print the average duration"),
            Opt.Flag("--dump-maps", "print the maps' contents after the run"),
            Opt.Json(),
        ],
    };

    static int Run(Args args, TextWriter stdout, TextWriter stderr)
    {
        if (args.Positional.Count != 1) throw new UsageException(args.Positional.Count == 0 ? "no OBJECT or FILE given" : "give exactly one OBJECT or FILE");
        bool verify = !args.Has("--no-verify");
        string engineName = args.Choice("--engine", "interpreter", "interpreter", "jit");
        // Unverified code runs only on a checking engine: the interpreter, or the JIT in checked mode.
        var engine = verify ? BpfEngines.Get(engineName) : BpfEngines.Checking(engineName);
        var packet = PacketOptions.Parse(args, required: true);
        if (ClassicRun.IsClassicFile(args.Positional[0])) return ClassicRun.Run(args, args.Positional[0], packet, stdout);
        int repeat = Repeat(args);
        using var host = ProgramHost.Load(args.Positional[0], args.Get("--program"), args.Get("--scenario"), engine, verify,
            ReuseportGroupSetup.FileType(args, args.Positional[0]));
        CgroupOption.Apply(args, host.Maps);
        packet = ReuseportGroupSetup.WithHash(args, host, packet);
        if (host.Reuseport != null) return ReuseportRun.Run(args, host, packet, engine, repeat, stdout, stderr);
        if (args.Has("--members")) throw new UsageException("--members applies to SK_REUSEPORT programs only");

        using var ctx = new SkLookupContext();
        ctx.Fill(packet);
        uint retval;
        bool noReuseport;
        string? socketName = null;
        ulong cookie = 0;
        long started = 0, elapsed = 0;
        MapEpoch.Enter();
        try
        {
            try
            {
                // BPF_PROG_TEST_RUN's loop: each run starts from the same context with no socket selected.
                retval = 0;
                started = Stopwatch.GetTimestamp();
                for (int i = 0; i < repeat; i++)
                {
                    ctx.Fill(packet);
                    retval = host.Program.Run(ctx.Address);
                }
                elapsed = Stopwatch.GetTimestamp() - started;
            }
            catch (BpfException e) when (e is BpfFaultException or BpfRuntimeException)
            {
                // A fault is a result of the run, not bad input: one line naming the program and instruction.
                stderr.WriteLine($"{host.Source}: fault: {e.Message}");
                return Cli.Negative;
            }
            noReuseport = ctx.NoReuseport;
            if (ctx.SelectedSocket != 0)
            {
                cookie = Sock.CookieOf(ctx.SelectedSocket);
                socketName = Sock.FromHandle(ctx.SelectedSocket) is { } s ? ProgramHost.NameOf(s) : $"#{cookie}";
            }
        }
        finally
        {
            MapEpoch.Exit();
        }
        // The test run's duration: the whole loop's time divided by the runs, in whole nanoseconds.
        ulong durationNs = (ulong)(Stopwatch.GetElapsedTime(0, elapsed).TotalNanoseconds / repeat);
        var maps = args.Has("--dump-maps") ? host.Program.Maps : [];
        string verdictName = retval switch { SkLookupLayout.SkPass => "SK_PASS", SkLookupLayout.SkDrop => "SK_DROP", _ => "invalid" };
        if (args.Has("--json"))
        {
            JsonOutput.Write(stdout, w =>
            {
                w.WriteStartObject();
                w.WriteString("program", host.Program.Name);
                w.WriteString("source", host.Source);
                w.WriteString("engine", engine.Name);
                w.WriteStartObject("context");
                w.WriteString("proto", PacketOptions.ProtoName(packet.Protocol));
                w.WriteString("family", PacketOptions.FamilyName(packet.Family));
                w.WriteString("from", packet.From.ToString());
                w.WriteString("to", packet.To.ToString());
                w.WriteNumber("ifindex", packet.IngressIfindex);
                w.WriteEndObject();
                w.WriteNumber("retval", retval);
                w.WriteString("verdict", verdictName);
                w.WriteBoolean("noReuseport", noReuseport);
                if (socketName == null) w.WriteNull("socket");
                else
                {
                    w.WriteStartObject("socket");
                    w.WriteString("name", socketName);
                    w.WriteNumber("cookie", cookie);
                    w.WriteEndObject();
                }
                RunTail.WriteJson(w, args.Has("--repeat"), repeat, durationNs, args.Has("--dump-maps"), maps);
                w.WriteEndObject();
            });
        }
        else
        {
            stdout.WriteLine($"program {host.Source} ({engine.Name})");
            stdout.WriteLine($"context {packet}, ingress_ifindex {packet.IngressIfindex}");
            string sel = socketName == null ? "no socket selected" : $"socket {socketName} (cookie {cookie}){(noReuseport ? ", no reuseport" : "")}";
            stdout.WriteLine($"retval {retval} ({verdictName}), {sel}");
            RunTail.WriteText(stdout, args.Has("--repeat"), repeat, durationNs, maps);
        }
        return Cli.Ok;
    }

    /// <summary>--repeat N: 1 when absent; the test run's repeat is a u32 and 0 means 1, here at least 1 is asked for.</summary>
    static int Repeat(Args args)
    {
        string text = args.Get("--repeat", "1")!;
        return int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int n) && n > 0 ? n
            : throw new UsageException($"--repeat must be a positive number, not '{text}'");
    }
}
