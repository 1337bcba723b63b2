using System.Runtime.CompilerServices;
using BpfJit.Frontend;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.SkReuseport;
using BpfJit.Tests.Support;

namespace BpfJit.Tests.Maps;

/// <summary>
/// A program its loader never disposed (a leaked fd that the process exit would close): once the program is
/// collected, the references it held on its maps are dropped, so a map whose owner disposed it is freed
/// rather than kept alive by a program nothing can reach. SK_LOOKUP and SK_REUSEPORT programs alike.
/// </summary>
[TestFixture]
public class AbandonedProgramTests
{
    // r0 = the map's handle (a used_maps reference), r0 = 0, exit.
    static Instruction[] UsingMap(BpfMap map) => Assembler.Assemble($"lddw %r0, {map.Handle}\nmov %r0, 0\nexit");

    [MethodImpl(MethodImplOptions.NoInlining)]
    static void LoadAndAbandon(string type, BpfMap map)
    {
        if (type == "sk_lookup") _ = SkLookupProgram.Load("abandoned", UsingMap(map), Engines.Get("interpreter"));
        else _ = SkReuseportProgram.Load("abandoned", UsingMap(map), Engines.Get("interpreter"));
    }

    [TestCase("sk_lookup")]
    [TestCase("sk_reuseport")]
    public void ACollectedProgramReleasesItsMaps(string type)
    {
        var map = MapFactory.Create(MapType.Array, 4, 8, 1, 0, "held");
        LoadAndAbandon(type, map);
        map.Dispose();
        for (int i = 0; i < 4 && map.IsLive; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            MapEpoch.Collect();
        }
        Assert.That(map.IsLive, Is.False, "the abandoned program's reference went with it");
    }
}
