"""Owners' decisions that stand up in law, and residents without phones who
take part in everything: through the Python bindings and a real server.

Each phone holds only what the server sends it (a resident's phone never
receives another owner's private ballot).
"""

import time

import pytest
import linli_ffi as linli


def owners_vote(title, matter=linli.Matter.ORDINARY):
    return linli.VoteSpec(
        title=title,
        kind=linli.VoteKind.YES_NO_ABSTAIN(),
        eligibility=linli.Eligibility.VERIFIED_OWNERS(matter=matter, building=None, grid_id=None),
        ballots_public=False,
        hide_results=False,
        proxy_limit=1,
    )


def join_phones(tmp_path, coord, space, server, names):
    phones = []
    for name in names:
        inv = coord.create_invite(space, name, [linli.Role.RESIDENT])
        coord.sync_now(space, server)
        app = linli.LinliApp.open(str(tmp_path / name))
        app.join(inv.code, name, server)
        phones.append((app, app.my_member(space)))
    coord.sync_now(space, server)
    return phones


def test_an_owners_decision_on_phones_on_paper_and_by_proxy(tmp_path, server):
    coord = linli.LinliApp.open(str(tmp_path / "coord"))
    space = coord.create_space("幸福里小区", "王主任")
    coord.sync_now(space, server)
    owners = join_phones(tmp_path, coord, space, server, [f"业主{i}" for i in range(6)])
    # Units 101…601 (100.00 m²) belong to the six owners with phones, verified.
    # 701's owner is not verified yet; 801 has no registered owner; 901's
    # verified owner, 张奶奶, has no phone.
    for i, (_, member) in enumerate(owners):
        unit = f"{i + 1}01"
        coord.add_unit(space, unit, "3栋", "1单元", unit, 10_000)
        coord.link_unit(space, member, unit, linli.Relation.OWNER)
        coord.verify_owner(space, member, unit)
    for unit in ("701", "801", "901"):
        coord.add_unit(space, unit, "3栋", "1单元", unit, 8_000)
    unverified = coord.add_member_without_phone(space, "赵先生", [])
    coord.link_unit(space, unverified, "701", linli.Relation.OWNER)
    granny = coord.add_member_without_phone(space, "张奶奶", [])
    coord.link_unit(space, granny, "901", linli.Relation.OWNER)
    coord.verify_owner(space, granny, "901")
    assert {m.member_id: m.phones for m in coord.members(space, 0, 50)}[granny] == 0

    with pytest.raises(linli.LinliError.InvalidInput):
        bad = owners_vote("x")
        bad.kind = linli.VoteKind.SINGLE(options=["甲", "乙"])
        coord.create_vote(space, bad)  # an owners' decision is yes / no / abstain
    vote = coord.create_vote(space, owners_vote("使用维修资金更换电梯"))
    assert coord.open_vote(space, vote) == 9, "one head per unit, phone or not, verified or not"
    coord.sync_now(space, server)

    # Four owners vote yes on their phones: 4 of 9 is not quorate.
    for app, _ in owners[:4]:
        app.sync_now(space, server)
        app.cast_ballot(space, vote, [0])
        app.sync_now(space, server)
    coord.sync_now(space, server)
    figures = coord.owners_figures(space, vote)
    assert (figures.total_heads, figures.total_area_centi) == (9, 84_000)
    assert (figures.participating_heads, figures.participating_area_centi) == (4, 40_000)
    assert not coord.vote_results(space, vote).owners.quorate
    assert [u.unit_id for u in figures.unverified] == ["701"]
    assert [u.unit_id for u in figures.no_owner] == ["801"]

    # 张奶奶 votes on paper at the meeting; owner 5 gives owner 4 a proxy.
    paper = coord.enter_paper_ballot(space, vote, granny, [0])
    with pytest.raises(linli.LinliError.NotAllowed):
        coord.enter_paper_ballot(space, vote, unverified, [0])  # not verified: cannot vote
    (holder, holder_id), (giver, _) = owners[4], owners[5]
    giver.sync_now(space, server)
    giver.grant_proxy(space, vote, holder_id)
    giver.sync_now(space, server)
    holder.sync_now(space, server)
    by_proxy = holder.cast_as_proxy(space, vote, owners[5][1], [1])
    holder.cast_ballot(space, vote, [2])  # and abstains for their own unit
    holder.sync_now(space, server)
    coord.sync_now(space, server)
    coord.close_vote(space, vote)
    published = coord.publish_vote(space, vote)
    coord.sync_now(space, server)

    o = published.owners
    assert o.quorate and o.passed
    assert [(t.numerator, t.denominator, t.met) for t in o.thresholds] == [
        (68_000, 84_000, True),  # 680.00 of 840.00 m² took part: ≥ 2/3
        (7, 9, True),  # 7 of 9 owners: ≥ 2/3
        (48_000, 68_000, True),  # approving area > 1/2
        (5, 7, True),  # approving owners > 1/2
    ]
    assert (o.figures.abstaining_heads, o.figures.opposing_heads) == (1, 1)
    assert paper in published.counted_receipts and by_proxy in published.counted_receipts
    notice = coord.owners_notice(space, vote)
    assert "| 680.00 m² | 840.00 m² |" in notice.markdown and "| 7 人 | 9 人 |" in notice.markdown
    assert "<!doctype html>" in notice.html and "840.00 m²" in notice.html
    assert notice.csv.startswith("\ufeff") and notice.csv.count(",参与表决\r\n") == 7
    for text in (notice.markdown, notice.html, notice.csv):
        assert "张奶奶" not in text and "赵先生" not in text and granny not in text, "a notice names no one"
    # Every owner's phone reads the same result and notice.
    for app, _ in owners:
        app.sync_now(space, server)
        assert app.published_result(space, vote) == published
        assert app.owners_notice(space, vote) == notice


def test_co_owners_sales_and_invites_through_the_register(tmp_path, server):
    coord = linli.LinliApp.open(str(tmp_path / "coord"))
    space = coord.create_space("s", "主任")
    coord.sync_now(space, server)
    (a, a_id), (b, b_id) = join_phones(tmp_path, coord, space, server, ["甲", "乙"])
    coord.add_grid(space, "g1", "一网格")
    coord.add_household(space, "h1", "101户")
    coord.add_unit(space, "101", "1栋", "1单元", "101", 9_000)
    coord.set_unit_place(space, "101", "g1", "h1")
    assert [u.grid_id for u in coord.units(space, 0, 10)] == ["g1"]
    for m in (a_id, b_id):
        coord.link_unit(space, m, "101", linli.Relation.OWNER)
        coord.verify_owner(space, m, "101")
    # Without a designation either co-owner votes for the unit — the one
    # with the larger member id too — and the unit counts once.
    first = coord.create_vote(space, owners_vote("维修屋顶"))
    assert coord.open_vote(space, first) == 1
    coord.sync_now(space, server)
    larger, larger_id = (a, a_id) if a_id > b_id else (b, b_id)
    larger.sync_now(space, server)
    ballot = larger.cast_ballot(space, first, [0])
    larger.sync_now(space, server)
    coord.sync_now(space, server)
    result = coord.vote_results(space, first)
    assert result.counted_receipts == [ballot] and result.owners.figures.participating_heads == 1
    with pytest.raises(linli.LinliError.InvalidInput):
        coord.designate_voter(space, "101", coord.my_member(space))  # not an owner of 101
    coord.designate_voter(space, "101", b_id)
    vote = coord.create_vote(space, owners_vote("更换物业"))
    assert coord.open_vote(space, vote) == 1, "a co-owned unit counts once"
    coord.sync_now(space, server)
    for app in (a, b):
        app.sync_now(space, server)
    with pytest.raises(linli.LinliError.NotAllowed):
        a.cast_ballot(space, vote, [0])  # 乙 votes for the unit
    receipt = b.cast_ballot(space, vote, [0])
    b.sync_now(space, server)
    coord.sync_now(space, server)
    assert coord.vote_results(space, vote).counted_receipts == [receipt]

    # 101 is sold: 甲's link ends and 乙's verification is withdrawn.
    coord.end_link(space, a_id, "101")
    coord.withdraw_verification(space, b_id, "101")
    later = coord.create_vote(space, owners_vote("下一次表决"))
    coord.open_vote(space, later)
    figures = coord.owners_figures(space, later)
    assert [u.unit_id for u in figures.unverified] == ["101"]
    assert coord.vote_results(space, vote).counted_receipts == [receipt], "the open vote kept its electorate"

    # An invite for a member registered without a phone; another revoked before use.
    grandpa = coord.add_member_without_phone(space, "李爷爷", [])
    spare = coord.create_invite(space, "备用", [linli.Role.RESIDENT])
    coord.revoke_invite(space, spare.invite_id)
    inv = coord.invite_member(space, grandpa)
    coord.sync_now(space, server)
    phone = linli.LinliApp.open(str(tmp_path / "grandpa"))
    joined = phone.join(inv.code, "爷爷", server)
    assert joined.member_id == grandpa
    with pytest.raises(linli.LinliError.Refused):
        linli.LinliApp.open(str(tmp_path / "spare")).join(spare.code, "x", server)


SURVEY = """{
  "format": "linli-survey/1",
  "title": "入户需求调查",
  "items": [{"type": "number", "id": "n", "label": "家庭人数", "required": true, "min": 1, "max": 9}]
}"""


def test_answers_at_the_door_hours_and_attendance_for_a_resident_without_a_phone(tmp_path, server):
    coord = linli.LinliApp.open(str(tmp_path / "coord"))
    space = coord.create_space("s", "王主任")
    coord.set_category(space, "care", "助老", 10, True)
    coord.sync_now(space, server)
    [(li, li_id)] = join_phones(tmp_path, coord, space, server, ["李阿姨"])
    grandpa = coord.add_member_without_phone(space, "李爷爷", [linli.Role.VOLUNTEER])

    survey = coord.create_survey(space, SURVEY)
    coord.publish_survey(space, survey)
    coord.add_participation_rule(space, linli.Participation.SURVEY, None, 5)
    time.sleep(0.005)
    receipt = coord.submit_response_for(space, survey, grandpa, '{"n": 2}')
    with pytest.raises(linli.LinliError.BadAnswers):
        coord.submit_response_for(space, survey, grandpa, '{"n": 0}')
    with pytest.raises(linli.LinliError.NotAllowed):
        coord.submit_response_for(space, survey, "not-a-member", '{"n": 2}')
    coord.sync_now(space, server)
    li.sync_now(space, server)
    with pytest.raises(linli.LinliError.NotAllowed):
        li.submit_response_for(space, survey, grandpa, '{"n": 2}')  # a resident is no interviewer
    import json

    results = json.loads(coord.survey_results_json(space, survey, None, None))
    assert results["responses"] == 1
    [row] = [a for a in results["audit"] if a["receipt"] == receipt]
    assert row["entered_by"] == coord.my_member(space)
    # The interview is his participation: publishing the results awards it,
    # publicly, so 李阿姨's phone (which never holds his answers) agrees.
    coord.close_survey(space, survey)
    coord.publish_survey_results(space, survey)
    assert coord.award_participation(space, survey) == 0, "already awarded"

    # He walked 李阿姨's mother for two hours; the coordinator logs it for him.
    now = int(time.time() * 1000)
    hours = coord.log_hours_for(space, grandpa, li_id, None, "care", 120, now - 3_600_000, "陪老人散步")
    with pytest.raises(linli.LinliError.NotAllowed):
        coord.decide_hours(space, hours, True, "")  # whoever logged them does not confirm them
    coord.sync_now(space, server)
    li.sync_now(space, server)
    [todo] = li.hours_to_answer(space)
    assert (todo.volunteer, todo.entered_by) == (grandpa, coord.my_member(space))
    li.confirm_hours(space, hours)
    li.sync_now(space, server)
    # Checked in at an activity and marked present at a consultation.
    activity = coord.create_activity(space, "楼道清扫", "care", now, "3栋", None)
    coord.check_in(space, activity, [linli.CheckIn(member_id=grandpa, minutes=60)])
    meeting = coord.create_consultation(space, "议事会", "2026-12-05", "活动室", [])
    coord.mark_attendance(space, meeting, grandpa, True)
    coord.sync_now(space, server)
    li.sync_now(space, server)
    assert coord.attendance(space, meeting) == [grandpa]
    for app in (coord, li):
        assert app.balance(space, grandpa).points == 35, "5 for the interview, 20 + 10 for his hours, on every phone"


def test_a_late_ballot_reaches_the_official_result_by_publishing_again(tmp_path, server):
    coord = linli.LinliApp.open(str(tmp_path / "coord"))
    space = coord.create_space("s", "主任")
    coord.sync_now(space, server)
    (on_time, _), (late, _) = join_phones(tmp_path, coord, space, server, ["甲", "乙"])
    spec = linli.VoteSpec(
        title="绿化改造", kind=linli.VoteKind.YES_NO_ABSTAIN(), eligibility=linli.Eligibility.ALL_MEMBERS(),
        ballots_public=False, hide_results=False, proxy_limit=1,
    )
    vote = coord.create_vote(space, spec)
    coord.open_vote(space, vote)
    coord.sync_now(space, server)
    for app in (on_time, late):
        app.sync_now(space, server)
    first_receipt = on_time.cast_ballot(space, vote, [0])
    on_time.sync_now(space, server)
    late_receipt = late.cast_ballot(space, vote, [1])  # offline until after the publication
    coord.sync_now(space, server)
    coord.close_vote(space, vote)
    first = coord.publish_vote(space, vote)
    assert first.counted_receipts == [first_receipt]
    with pytest.raises(linli.LinliError.InvalidInput):
        coord.publish_vote(space, vote)  # nothing new
    late.sync_now(space, server)
    coord.sync_now(space, server)
    second = coord.publish_vote(space, vote)
    assert sorted(second.counted_receipts) == sorted([first_receipt, late_receipt])
    coord.sync_now(space, server)
    late.sync_now(space, server)
    assert late.published_result(space, vote) == second, "the official result is the latest"
    assert [p.result for p in late.vote_publications(space, vote)] == [first, second], "the first is kept"
