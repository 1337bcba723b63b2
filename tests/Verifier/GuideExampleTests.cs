using System.Text.RegularExpressions;
using BpfJit.Frontend.Elf;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;
using BpfJit.Tests.Support;
using BpfJit.Verifier;

namespace BpfJit.Tests.Verifier;

/// <summary>
/// The examples of docs/verifier-guide.md: in each docs/verifier-guide/NAME.c the program NAME is
/// rejected with the message its <c>expect:</c> line names, and NAME_fixed (the guide's advice applied)
/// is accepted. The committed objects are the ones the guide's logs were taken from.
/// </summary>
public class GuideExampleTests
{
    static string Folder => Path.Combine(Paths.RepoRoot, "docs", "verifier-guide");

    public static IEnumerable<string> Names() =>
        Directory.GetFiles(Path.Combine(Paths.RepoRoot, "docs", "verifier-guide"), "*.c").Select(Path.GetFileNameWithoutExtension).Order()!;

    static VerifierResult Verify(string name, string program)
    {
        var collection = ObjectFile.Load(Path.Combine(Folder, name + ".o"));
        var spec = collection.Programs.Single(p => p.Name == program);
        return ObjectVerification.Verify(collection, spec, BpfJit.Runtime.SkLookup.SkLookupHelpers.CreateTable());
    }

    [TestCaseSource(nameof(Names))]
    public void TheExampleIsRejectedWithItsMessage(string name)
    {
        string source = File.ReadAllText(Path.Combine(Folder, name + ".c"));
        var expect = Regex.Match(source, @"expect: (.*?) \*/");
        Assert.That(expect.Success, $"{name}.c has no 'expect: MESSAGE */' line");
        var result = Verify(name, name);
        Assert.That(result.Accepted, Is.False, $"{name} was accepted");
        Assert.That(result.Log, Does.Contain(expect.Groups[1].Value));
    }

    [TestCaseSource(nameof(Names))]
    public void TheFixedProgramIsAccepted(string name)
    {
        var result = Verify(name, name + "_fixed");
        Assert.That(result.Accepted, Is.True, result.Log);
    }

    /// <summary>Examples of what BpfJit refuses and Linux accepts (docs/verifier.md lists the differences).</summary>
    static readonly Dictionary<string, string> s_bpfJitOnly = new()
    {
    };

    /// <summary>The guide teaches what Linux does: the kernel rejects each example with the same message and accepts its fix.</summary>
    [TestCaseSource(nameof(Names))]
    public void TheKernelAgrees(string name)
    {
        KernelBpf.RequireAvailable();
        if (s_bpfJitOnly.TryGetValue(name, out var why)) Assert.Ignore($"{name}: a BpfJit-only refusal ({why})");
        var collection = ObjectFile.Load(Path.Combine(Folder, name + ".o"));
        string expect = Regex.Match(File.ReadAllText(Path.Combine(Folder, name + ".c")), @"expect: (.*?) \*/").Groups[1].Value;
        var elf = ElfFile.Parse(File.ReadAllBytes(Path.Combine(Folder, name + ".o")), name);
        int btf = elf.FindSection(".BTF") is { } section ? KernelBtf.LoadObjectBtf(elf.Data(section)) : -1;
        try
        {
            foreach (var (program, accept) in new[] { (name, false), (name + "_fixed", true) })
            {
                // As libbpf: a BTF-defined map with its BTF types, and without them when the kernel refuses those (a SOCKMAP).
                var fds = collection.Maps.Select(m => m.SpinLockOffset >= 0
                    ? KernelBtf.CreateMapWithSpinLock((uint)m.Type, (int)m.KeySize, (int)m.ValueSize, (int)m.MaxEntries, m.Flags, m.SpinLockOffset)
                    : btf >= 0 && m.BtfValueTypeId != 0
                        && KernelBtf.CreateMapWithBtf((uint)m.Type, (int)m.KeySize, (int)m.ValueSize, (int)m.MaxEntries, m.Flags, btf, m.BtfKeyTypeId, m.BtfValueTypeId) is >= 0 and var typed
                        ? typed
                        : KernelBpf.CreateMap((uint)m.Type, (int)m.KeySize, (int)m.ValueSize, (int)m.MaxEntries, m.Flags)).ToList();
                try
                {
                    Assert.That(fds, Has.All.GreaterThanOrEqualTo(0), "BPF_MAP_CREATE");
                    var k = KernelBpf.Load(collection.Programs[program].Instructions, fds);
                    Assert.That(k.Accepted, Is.EqualTo(accept), $"{program}: {k.Log}");
                    if (!accept) Assert.That(k.Log, Does.Contain(expect), program);
                }
                finally
                {
                    foreach (var fd in fds) if (fd >= 0) KernelBpf.Close(fd);
                }
            }
        }
        finally
        {
            if (btf >= 0) KernelBpf.Close(btf);
        }
    }

    /// <summary>
    /// unchecked_sk_fixed passes a SOCKMAP lookup to bpf_sk_assign without a NULL check, as Linux allows; each
    /// engine then runs the kernel's NULL semantics: nothing selected returns 0, an existing selection without
    /// BPF_SK_LOOKUP_F_REPLACE gives -EEXIST (SK_DROP), and a socket in the map is selected.
    /// </summary>
    [TestCaseSource(typeof(Engines), nameof(Engines.Names))]
    public void AnUncheckedSocketReachesSkAssignOnEveryEngine(string engine)
    {
        var collection = ObjectFile.Load(Path.Combine(Folder, "unchecked_sk.o"));
        var program = collection.Programs["unchecked_sk_fixed"];
        var helpers = BpfJit.Runtime.SkLookup.SkLookupHelpers.CreateTable();
        using var ns = new NetNamespace();
        var listener = ns.Sockets.Create(SocketFamily.Inet, SocketProtocol.Tcp);
        listener.Bind(InetEndPoint.From(System.Net.IPEndPoint.Parse("127.0.0.1:7007")));
        listener.Listen();
        var other = ns.Sockets.Create(SocketFamily.Inet, SocketProtocol.Tcp);
        other.Bind(InetEndPoint.From(System.Net.IPEndPoint.Parse("127.0.0.1:7008")));
        other.Listen();
        var maps = collection.Maps.Select(m => MapFactory.Create(new MapDefinition(
            m.Name, (MapType)(int)m.Type, (int)m.KeySize, (int)m.ValueSize, (int)m.MaxEntries, m.Flags))).ToList();
        try
        {
            var facts = new SkLookupProgramVerifier().VerifyWithFacts(program, maps, helpers);
            var loaded = SkLookupProgram.Load(program.Name, ProgramBinder.Bind(program.Instructions, maps).Code, Engines.Get(engine), helpers, facts);
            using var ctx = new SkLookupContext();
            var packet = new Packet(SocketProtocol.Tcp, InetEndPoint.From(System.Net.IPEndPoint.Parse("127.0.0.2:40000")),
                InetEndPoint.From(System.Net.IPEndPoint.Parse("127.0.0.1:7007")), 1);

            ctx.Fill(packet);
            Assert.That(loaded.Run(ctx.Address), Is.EqualTo(SkLookupLayout.SkPass), "NULL with nothing selected: 0");
            Assert.That(ctx.SelectedSocket, Is.EqualTo((nint)0));

            ctx.Fill(packet);
            ctx.SelectedSocket = other.Handle;
            Assert.That(loaded.Run(ctx.Address), Is.EqualTo(SkLookupLayout.SkDrop), "NULL over a selection without F_REPLACE: -EEXIST");
            Assert.That(ctx.SelectedSocket, Is.EqualTo(other.Handle), "the selection stays");

            Assert.That(((SockMap)maps[0]).Update(0, listener), Is.Zero);
            ctx.Fill(packet);
            Assert.That(loaded.Run(ctx.Address), Is.EqualTo(SkLookupLayout.SkPass));
            Assert.That(ctx.SelectedSocket, Is.EqualTo(listener.Handle), "the socket in the map is selected");
        }
        finally
        {
            foreach (var m in maps) m.Dispose();
        }
    }

    [Test]
    public void EveryExampleIsInTheGuide()
    {
        string guide = File.ReadAllText(Path.Combine(Paths.RepoRoot, "docs", "verifier-guide.md"));
        foreach (string name in Names())
            Assert.That(guide, Does.Contain($"verifier-guide/{name}.c"), $"docs/verifier-guide.md does not show {name}.c");
    }
}
