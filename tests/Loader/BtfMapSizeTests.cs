using System.Diagnostics;
using BpfJit.Frontend;
using BpfJit.Frontend.Elf;
using BpfJit.Tests.Support;

namespace BpfJit.Tests.Loader;

/// <summary>
/// A BTF-defined map whose key or value size is given twice (<c>__uint(key_size, 4)</c> and <c>__type(key, u64)</c>,
/// in either order) is refused as libbpf refuses it, with its message; sizes that agree are accepted. Compared with
/// libbpf itself where bpftool is installed (<c>bpftool gen skeleton</c> opens the object as libbpf does, without
/// the kernel).
/// </summary>
[TestFixture]
public class BtfMapSizeTests
{
    static string Object(string name) => Path.Combine(Paths.RepoRoot, "tests", "Loader", "objects", name + ".o");

    static readonly (string Object, string Message)[] s_conflicts =
    [
        ("btf_key_size_then_key", "map 'm': conflicting key size 4 != 8"),
        ("btf_key_then_key_size", "map 'm': conflicting key size 8 != 4"),
        ("btf_value_size_then_value", "map 'm': conflicting value size 8 != 4"),
        ("btf_value_then_value_size", "map 'm': conflicting value size 4 != 8"),
    ];

    static IEnumerable<TestCaseData> Conflicts() => s_conflicts.Select(c => new TestCaseData(c.Object, c.Message).SetArgDisplayNames(c.Object));

    [TestCaseSource(nameof(Conflicts))]
    public void Conflicting_sizes_are_refused_with_libbpfs_message(string obj, string message)
    {
        var e = Assert.Throws<BpfObjectException>(() => ObjectFile.Load(Object(obj)));
        Assert.That(e!.Message, Does.Contain(message));
    }

    [Test]
    public void Sizes_that_agree_are_accepted()
    {
        var m = ObjectFile.Load(Object("btf_size_agree")).Maps["m"];
        Assert.That((m.KeySize, m.ValueSize), Is.EqualTo((8u, 8u)));
    }

    [TestCaseSource(nameof(Conflicts))]
    public void Libbpf_refuses_the_same_objects_with_the_same_message(string obj, string message)
    {
        var libbpf = Libbpf(obj);
        Assert.That(libbpf.Code, Is.Not.Zero, libbpf.Err);
        Assert.That(libbpf.Err, Does.Contain("libbpf: " + message + "."));
        Assert.That(Libbpf("btf_size_agree").Code, Is.Zero);
    }

    /// <summary>libbpf's bpf_object__open on <paramref name="obj"/>, through bpftool; ignored where bpftool is missing.</summary>
    static (int Code, string Err) Libbpf(string obj)
    {
        string? bpftool = new[] { "/usr/sbin/bpftool", "/usr/bin/bpftool", "/sbin/bpftool" }.FirstOrDefault(File.Exists);
        if (bpftool == null) Assert.Ignore("bpftool (libbpf) is not installed: libbpf's answer is not compared");
        var psi = new ProcessStartInfo(bpftool!, ["gen", "skeleton", Object(obj)]) { RedirectStandardError = true, RedirectStandardOutput = true };
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, err.Result);
    }
}
