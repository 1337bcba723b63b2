using System.Net;
using BpfJit.Frontend.Elf;
using BpfJit.IlEmitter;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;
using BpfJit.Tests.Support;

namespace BpfJit.Tests.Cli;

/// <summary>docs/packages.md (every package's README) shows this code: it must build and do what it says.</summary>
public class PackageReadmeExampleTests
{
    [Test]
    public void TheEmbeddingExampleSteersToTheEchoSocket()
    {
        using var ns = new NetNamespace();
        var echo = ns.Sockets.Create(SocketFamily.Inet, SocketProtocol.Tcp);
        echo.Bind(InetEndPoint.From(IPEndPoint.Parse("127.0.0.1:8008")));
        echo.Listen();

        var spec = ObjectFile.Load(Path.Combine(Paths.RepoRoot, "tests", "programs", "redir_port.o"));
        var program = spec.Programs["redir_port"];
        var maps = spec.Maps.Select(m => MapFactory.Create(new MapDefinition(
            m.Name, (MapType)(int)m.Type, (int)m.KeySize, (int)m.ValueSize, (int)m.MaxEntries, m.Flags))).ToList();
        ((SockMap)maps[spec.Maps.IndexOf("redir_map")]).Update(0, echo);
        ProgramVerification.Verify(program, maps, SkLookupHelpers.CreateTable());
        var code = ProgramBinder.Bind(program.Instructions, maps).Code;
        ns.SkLookup.Attach(SkLookupProgram.Load(program.Name, code, JitEngine.Instance));

        var result = ns.Lookup(SocketProtocol.Tcp, IPEndPoint.Parse("127.0.0.2:8008"), IPEndPoint.Parse("127.0.0.1:7007"));
        Assert.That(result.Socket, Is.SameAs(echo));
        foreach (var m in maps) m.Dispose();
    }
}
