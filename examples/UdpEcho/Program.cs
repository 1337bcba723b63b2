using BpfJit.Examples.UdpEcho;
using BpfJit.Frontend;
using BpfJit.Runtime;
using BpfJit.Runtime.Loading;
using BpfJit.IlEmitter;

const string Usage = """
    usage: UdpEcho [--tun NAME] [--object PATH] [--engine jit|interpreter]
      Opens TUN device NAME (default bpfjit0; needs CAP_NET_ADMIN) and answers UDP datagrams
      arriving on it until Ctrl-C. Configure the other side, e.g.:
        ip addr add 10.77.0.254/24 dev bpfjit0 && ip -6 addr add fd77::fe/64 dev bpfjit0 nodad
        ip link set bpfjit0 up
        echo hi | nc -u -w1 10.77.0.1 7003      # range: hi
    """;

string tunName = "bpfjit0", objectPath = EchoService.DefaultObjectPath;
IBpfEngine engine = JitEngine.Instance;
for (int i = 0; i < args.Length; i++)
{
    string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
    try
    {
        switch (args[i])
        {
            case "--tun": tunName = Value(); break;
            case "--object": objectPath = Value(); break;
            case "--engine":
                engine = Value() switch
                {
                    "jit" => JitEngine.Instance,
                    "interpreter" => InterpreterEngine.Instance,
                    var e => throw new ArgumentException($"--engine {e}: jit or interpreter"),
                };
                break;
            case "-h" or "--help": Console.WriteLine(Usage); return 0;
            default: throw new ArgumentException($"unknown argument '{args[i]}'");
        }
    }
    catch (ArgumentException e)
    {
        Console.Error.WriteLine($"UdpEcho: {e.Message}");
        Console.Error.WriteLine(Usage);
        return 2;
    }
}

// [errors]
EchoStack stack;
try { stack = EchoService.Create(objectPath, engine); }
catch (BpfException e) // every loader, map, verifier, binder and compiler error derives from it
{
    // A CollectionLoadException names the file, section, program or map and instruction; a rejection keeps its log.
    Console.Error.WriteLine($"UdpEcho: {e.Message}");
    if (e is CollectionLoadException { VerifierLog: { } log }) Console.Error.Write(log);
    return 2;
}
// [/errors]
using (stack)
{
    TunDevice tun;
    try { tun = TunDevice.Open(tunName); }
    catch (TunException e)
    {
        Console.Error.WriteLine($"UdpEcho: {e.Message}");
        return 2;
    }
    using (tun)
    {
        using var stop = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };
        stack.PacketProcessed += e => Console.WriteLine(e);
        Console.WriteLine($"UdpEcho on {tun.Name} ({engine.Name}); Ctrl-C stops");
        stack.Run(tun, stop.Token);
        Console.WriteLine(string.Join(", ", stack.Counts.Select(c => $"{c.Key} {c.Value}")));
    }
}
return 0;
